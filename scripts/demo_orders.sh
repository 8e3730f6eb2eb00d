#!/usr/bin/env bash
# scripts/demo_orders.sh ENDPOINT [REDIS_PREFIX]: the order flow and the batch, against a
# running daemon (scripts/demo.sh calls it; it can be run on its own).
#
#   1. the order flow (seed 000, functions/orders/README.md): stock and prices in the store,
#      OnFailure destinations for order-check and order-register, then a batch of orders
#      (some invalid) sent at once; every step of every order is printed as it happens,
#      read from the flow's log stream in Redis (order:_log); then a summary table: each
#      order's status and path, orders accepted and rejected, containers started, cold-start
#      p50/p99 (order-accept's Server-Timing, and invoke -> handler of the Event steps),
#      time per order, containers left;
#   2. seed 002 (functions/kv): a key/value roundtrip, a batch of 8 items (Done) and one with
#      a failing item (its status is the first failure), each read back from the store.
# Keys of the run (order ids d<pid>-N, skus demo-*) are removed at the end.
# Needs: curl, redis-cli, the images of `make -f Makefile.docker orders`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENDPOINT=${1:?usage: demo_orders.sh ENDPOINT [REDIS_PREFIX]}
RUN=d$$
R() { redis-cli --raw "$@"; }
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
[[ -t 1 ]] || say() { printf 'demo: %s\n' "$*"; }
tmp=$(mktemp -d)
cleanup() {
  [[ -n ${watcher:-} ]] && kill "$watcher" 2>/dev/null || true
  for p in "order:$RUN-*" "document:$RUN-*" "batch:$RUN-*" "kv:$RUN-*" "stock:demo-*" "price:demo-*"; do
    R --scan --pattern "$p" | xargs -r redis-cli del >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

metric() {  # metric NAME -> the value of an unlabelled counter
  curl -fsS "$ENDPOINT/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
invoke() {  # invoke FUNCTION PAYLOAD -> body on stdout
  curl -sS -X POST "$ENDPOINT/2015-03-31/functions/$1/invocations" -d "$2"
}
percentile() {  # percentile P < numbers
  sort -g | awk -v p="$1" '{a[NR]=$1} END {if (NR == 0) {print "-"; exit}
    i = int(p * (NR - 1) + 0.5) + 1; printf "%.0f", a[i]}'
}

# ---- 1. the order flow ----
say "order flow (seed 000): order-accept -> order-check -> order-register -> order-generate,"
say "  one container per call, by name through the daemon, data only through the store"
# What order-check checks against: units in stock, prices in cents.
R mset stock:demo-apple 20 price:demo-apple 50 stock:demo-pear 3 price:demo-pear 120 \
  stock:demo-fig 0 price:demo-fig 200 stock:demo-gold 5 price:demo-gold 2000000 >/dev/null
for step in order-check order-register; do
  curl -fsS -X PUT "$ENDPOINT/2019-09-25/functions/$step/event-invoke-config" \
    -H 'Content-Type: application/json' \
    -d '{"MaximumRetryAttempts":1,"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:order-generate"}}}' \
    >/dev/null
done
echo "  stock: demo-apple 20 @ 0.50, demo-pear 3 @ 1.20, demo-fig 0 @ 2.00, demo-gold 5 @ 20000.00;"
echo "  order-check and order-register fail over to order-generate (OnFailure destination)"

orders=(
  '"customer":"ada","items":[{"sku":"demo-apple","qty":2,"price":0.5},{"sku":"demo-pear","qty":1,"price":1.2}]'
  '"customer":"bob","items":[{"sku":"demo-apple","qty":5,"price":0.5}]'
  '"customer":"cy","items":[{"sku":"demo-pear","qty":5,"price":1.2}]'
  '"customer":"di","items":[{"sku":"demo-apple","qty":1,"price":0.4}]'
  '"customer":"ed","items":[{"sku":"demo-kiwi","qty":1,"price":1.0}]'
  '"customer":"fa","items":[{"sku":"demo-apple","qty":0,"price":0.5}]'
  '"items":[{"sku":"demo-apple","qty":1,"price":0.5}]'
  '"customer":"gil","items":[{"sku":"demo-fig","qty":1,"price":2.0}]'
  '"customer":"hal","items":[{"sku":"demo-apple","qty":3,"price":0.5}]'
  '"customer":"ivy","items":[{"sku":"demo-gold","qty":1,"price":20000}]'
  '"customer":"jo","items":[{"sku":"demo-pear","qty":2,"price":1.2}]'
  '"customer":"kai","items":[{"sku":"demo-apple","qty":1,"price":0.5}]'
)
n=${#orders[@]}
created0=$(metric ephemera_containers_created_total)

# The watcher: every step of this run's orders, as it lands in the log stream.
last=$(R xrevrange order:_log + - count 1 | head -n1)
[[ -n $last ]] || last=0-0
(
  set +e
  while :; do
    out=$(R xrange order:_log "($last" + count 200 2>/dev/null)
    if [[ -n $out ]]; then
      printf '%s\n' "$out" | awk -v run="$RUN-" '
        NR % 11 == 1 {id = $0} NR % 11 == 3 {o = $0} NR % 11 == 5 {s = $0}
        NR % 11 == 7 {st = $0} NR % 11 == 9 {d = $0}
        NR % 11 == 0 {if (index(o, run) == 1) {
          lat = ($0 == "-1") ? "" : sprintf("(invoked %d ms before)", $0)
          printf "  %-8s %-15s %-10s %-44s %s\n", o, s, st, substr(d, 1, 44), lat}}
        END {print id > "/dev/stderr"}' 2>"$tmp/last"
      last=$(cat "$tmp/last")
    fi
    sleep 0.2
  done
) &
watcher=$!

say "sending $n orders at once (order-accept, RequestResponse); the steps as they happen:"
printf '  %-8s %-15s %-10s %-44s %s\n' order step status detail ""
t_start=$(date +%s%N)
for i in $(seq 1 "$n"); do
  id="$RUN-$i"
  body="{\"order_id\":\"$id\",${orders[$((i - 1))]}}"
  (
    s=$(date +%s%N)
    curl -sS -D "$tmp/h$i" -o "$tmp/a$i" -X POST \
      "$ENDPOINT/2015-03-31/functions/order-accept/invocations" -d "$body"
    # Completion: the order's last step pushes its final status (the seed's callback).
    R blpop "order:$id:done" 90 >/dev/null
    e=$(date +%s%N)
    echo $(((e - s) / 1000000)) >"$tmp/t$i"
  ) &
done
wait_rc=0
for job in $(jobs -p); do
  [[ $job == "$watcher" ]] && continue
  wait "$job" || wait_rc=1
done
sleep 0.5  # one more look by the watcher
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
watcher=
t_all=$((($(date +%s%N) - t_start) / 1000000))

# ---- the summary ----
# Idle: nothing in flight, nothing being removed.
for _ in $(seq 1 300); do
  h=$(curl -fsS "$ENDPOINT/healthz" || true)
  [[ $h == *'"in_flight":0'* && $h == *'"disposing":0'* ]] && break
  sleep 0.1
done
created=$(($(metric ephemera_containers_created_total) - created0))
echo
printf '  %-8s %-9s %-10s %-48s %s\n' order customer status "number / reason" path
accepted=0 rejected=0 completed=0 failed=0 at_accept=0
for i in $(seq 1 "$n"); do
  id="$RUN-$i"
  status=$(R hget "order:$id" status)
  customer=$(R hget "order:$id" customer)
  if [[ $status == completed ]]; then
    what="number $(R hget "order:$id" number), total $(R get "document:$id" | sed -n 's/.*"total":"\([^"]*\)".*/\1/p')"
  else
    what=$(R hget "order:$id" reason)
  fi
  path=$(R lrange "order:$id:path" 0 -1 | awk '{printf "%s%s", (NR > 1 ? " > " : ""), $1}')
  printf '  %-8s %-9s %-10s %-48s %s\n' "$id" "${customer:--}" "$status" "${what:0:48}" "$path"
  case $status in
    completed) completed=$((completed + 1)) ;;
    rejected) rejected=$((rejected + 1)) ;;
    failed) failed=$((failed + 1)) ;;
  esac
  if [[ $(R lindex "order:$id:path" 0) == "order-accept accepted" ]]; then
    accepted=$((accepted + 1))
  else
    at_accept=$((at_accept + 1))
  fi
done
# Cold starts: order-accept's own container (Server-Timing create + start + init: what the
# start itself cost) and its whole invoke (total: with the wait for a start slot, since all
# orders come at once and starts are capped at the engine's knee); and the Event steps'
# invoke -> handler (the same wait, plus the cold start).
for i in $(seq 1 "$n"); do
  tr -d '\r' <"$tmp/h$i" | sed -n 's/^Server-Timing: //Ip' | tr ',' '\n' | awk -F'dur=' '
    /create;|start;|init;/ {c += $2} /total;/ {t = $2} END {print c > "/dev/stderr"; print t}'
done >"$tmp/accept_ms" 2>"$tmp/start_ms"
R xrange order:_log - + count 100000 | awk -v run="$RUN-" '
  NR % 11 == 3 {o = $0} NR % 11 == 0 {if (index(o, run) == 1 && $0 != "-1") print $0}' >"$tmp/hop_ms"
cat "$tmp"/t* >"$tmp/order_ms" 2>/dev/null || true
left=0
for f in order-accept order-check order-register order-generate; do
  left=$((left + $(/usr/bin/docker ps -aq --filter "label=ephemera.function=$f" | wc -l)))
done
echo
printf '  %-58s %s\n' "orders sent" "$n"
printf '  %-58s %s\n' "accepted by order-accept" "$accepted"
printf '  %-58s %s\n' "rejected by order-accept (invalid)" "$at_accept"
printf '  %-58s %s\n' "completed (number + document)" "$completed"
printf '  %-58s %s\n' "rejected by order-check (price, total, stock)" "$((rejected - at_accept))"
printf '  %-58s %s\n' "failed (a step out of retries)" "$failed"
printf '  %-58s %s\n' "containers started for them" "$created"
printf '  %-58s %s / %s ms\n' "cold start p50 / p99: order-accept create+start+init" \
  "$(percentile 0.5 <"$tmp/start_ms")" "$(percentile 0.99 <"$tmp/start_ms")"
printf '  %-58s %s / %s ms\n' "  order-accept invoke, with the wait for a start slot" \
  "$(percentile 0.5 <"$tmp/accept_ms")" "$(percentile 0.99 <"$tmp/accept_ms")"
printf '  %-58s %s / %s ms\n' "  Event steps, invoke -> handler (wait + cold start)" \
  "$(percentile 0.5 <"$tmp/hop_ms")" "$(percentile 0.99 <"$tmp/hop_ms")"
printf '  %-58s %s / %s ms\n' "time per order p50 / max (all $n at once, send -> done)" \
  "$(percentile 0.5 <"$tmp/order_ms")" "$(percentile 1 <"$tmp/order_ms")"
printf '  %-58s %s ms\n' "all $n orders" "$t_all"
printf '  %-58s %s\n' "containers left (order-*)" "$left"
ok=$((wait_rc == 0 && completed + rejected + failed == n && left == 0))

# ---- 2. seed 002: the key/value roundtrip and the batch ----
echo
say "seed 002: a key/value through kv-roundtrip -> kv-store -> the store -> back"
printf '  %s\n' "$(invoke kv-roundtrip "{\"key\":\"$RUN-greeting\",\"value\":\"hello from the client\"}")"
printf '  store: kv:%s-greeting = %s\n' "$RUN" "$(R get "kv:$RUN-greeting")"
say "seed 002: a batch of 8 items, fanned out as 8 Event invocations of batch-item"
items=$(for i in $(seq 1 8); do printf '%s{"id":"i%d","value":"value %d"}' "$([[ $i == 1 ]] || echo ,)" "$i" "$i"; done)
b1=$(invoke batch "{\"batch_id\":\"$RUN-b1\",\"wait_ms\":30000,\"items\":[$items]}")
printf '  %s\n' "$b1"
printf '  store: batch:%s-b1 = {%s}, %s items in batch:%s-b1:items\n' "$RUN" \
  "$(R hgetall "batch:$RUN-b1" | awk 'NR % 2 == 1 {k = $0; next} {printf "%s%s: %s", (n++ ? ", " : ""), k, $0}')" \
  "$(R hlen "batch:$RUN-b1:items")" "$RUN"
say "seed 002: a batch with a failing item (its status is the first failure); read back"
invoke batch "{\"batch_id\":\"$RUN-b2\",\"wait_ms\":30000,\"items\":[{\"id\":\"a\",\"value\":\"1\"},{\"id\":\"b\",\"value\":\"2\",\"fail\":\"b is out of range\"},{\"id\":\"c\",\"value\":\"3\"}]}" | sed 's/^/  /'
echo
invoke batch "{\"read\":\"$RUN-b2\"}" | sed 's/^/  /'
echo
say "seed 002: a wait limit that passes first is a 408"
invoke batch "{\"batch_id\":\"$RUN-b3\",\"wait_ms\":1,\"items\":[{\"value\":\"late\"}]}" | sed 's/^/  /'
echo
[[ $b1 == *'"status":"Done"'* ]] || ok=0
((ok))
