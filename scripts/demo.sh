#!/usr/bin/env bash
# scripts/demo.sh: the main job, from a fresh machine.
#
#   1. scripts/setup.sh: installs what is missing, starts dockerd and Redis, builds,
#      builds the function images;
#   2. starts the daemon (build/bin/ephemera serve) on 127.0.0.1:${EPHEMERA_DEMO_PORT:-9000};
#   3. invokes functions through the Lambda API and the plain route, each in a fresh
#      container: echo (native C++), shout (shell script, exec mode through the shim),
#      rev (static binary, no shell), a crashing runtime, a timeout;
#   4. prints a cold-start summary: N cold invocations of echo (median and phases from
#      Server-Timing) next to `docker run --rm` of the same image, measured in the same run;
#   5. the order flow (seed 000, functions/orders): a batch of orders, some invalid, each
#      order's steps shown as they happen (from the flow's log stream in Redis), then a
#      summary table (accepted, rejected, containers started, cold-start p50/p99, containers
#      left); then seed 002 (functions/kv): a key/value roundtrip and two batches with their
#      status and what is stored;
#   6. stops the daemon and checks that no container is left.
#
# Options: --no-setup (reuse what is built and running), --samples N (default 10),
# --no-orders (skip step 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT=${EPHEMERA_DEMO_PORT:-9000}
SAMPLES=10
run_setup=1
run_orders=1
while (($#)); do
  case $1 in
    --no-setup) run_setup=0 ;;
    --no-orders) run_orders=0 ;;
    --samples)
      SAMPLES=${2:?--samples needs a number}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "demo: unknown option $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
[[ -t 1 ]] || say() { printf 'demo: %s\n' "$*"; }

if ((run_setup)); then
  say "setup (packages, dockerd, Redis, build, images): scripts/setup.sh"
  scripts/setup.sh
fi

BIN=${EPHEMERA_BUILD_DIR:-build}/bin/ephemera
ENDPOINT=http://127.0.0.1:$PORT
LOG_DIR=${EPHEMERA_LOG_DIR:-/var/log/ephemera}
mkdir -p "$LOG_DIR"
DAEMON_LOG=$LOG_DIR/demo-daemon.log

if curl -fsS "$ENDPOINT/healthz" >/dev/null 2>&1; then
  echo "demo: something already answers on $ENDPOINT; stop it or set EPHEMERA_DEMO_PORT" >&2
  exit 1
fi

# Its Event queue, records and event invoke configs under a prefix of this run, so other
# daemons on the same Redis neither take its events nor see its configs (removed at the end).
REDIS_PREFIX="ephemera-demo-$$:"
say "starting the daemon: $BIN serve --listen 127.0.0.1:$PORT --redis-prefix $REDIS_PREFIX (log: $DAEMON_LOG)"
setsid "$BIN" serve --listen "127.0.0.1:$PORT" --redis-prefix "$REDIS_PREFIX" \
  --event-retry-delays 1000,2000 >"$DAEMON_LOG" 2>&1 </dev/null &
DAEMON=$!
stop_daemon() {
  if kill -0 "$DAEMON" 2>/dev/null; then
    kill -TERM "$DAEMON" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
  fi
}
trap stop_daemon EXIT
for _ in $(seq 1 100); do
  curl -fsS "$ENDPOINT/healthz" >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "demo: the daemon exited; see $DAEMON_LOG" >&2; cat "$DAEMON_LOG" >&2; exit 1; }
  sleep 0.1
done

# The daemon's own pid (setsid runs it in place, or forks it when it would lead a group):
# its containers carry it in the ephemera.daemon label.
DAEMON_PID=$DAEMON
[[ $(readlink "/proc/$DAEMON/exe" 2>/dev/null) == */ephemera ]] || DAEMON_PID=$(pgrep -P "$DAEMON" | head -n1)

say "functions the daemon knows: $BIN functions"
"$BIN" functions --endpoint "$ENDPOINT"
echo

show() {  # show TITLE -- command...
  local title=$1
  shift 2
  printf '\n$ %s\n' "$title"
  "$@" || true
}

show "ephemera invoke echo --payload '{\"hello\":\"world\"}' --timing" -- \
  "$BIN" invoke echo --endpoint "$ENDPOINT" --payload '{"hello":"world"}' --timing
echo
show "ephemera invoke shout --payload '\"make some noise\"'" -- \
  "$BIN" invoke shout --endpoint "$ENDPOINT" --payload '"make some noise"'
echo
show "curl --data-binary 'stressed' $ENDPOINT/function/rev   (plain route, raw bytes)" -- \
  curl -sS --data-binary 'stressed' "$ENDPOINT/function/rev"
echo
if [[ -x /usr/bin/aws ]]; then
  out=$(mktemp)
  show "aws lambda invoke --endpoint-url $ENDPOINT --function-name shout --payload '\"aws cli\"' out.json" -- \
    env AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1 \
    /usr/bin/aws lambda invoke --endpoint-url "$ENDPOINT" --function-name shout \
    --cli-binary-format raw-in-base64-out --payload '"aws cli"' "$out"
  printf 'out.json: %s\n' "$(cat "$out")"
  rm -f "$out"
fi
show "ephemera invoke crash   (the runtime exits before answering)" -- \
  "$BIN" invoke crash --endpoint "$ENDPOINT"
echo
show "ephemera invoke sleeper --payload '{}'   (sleeps 30 s; its timeout is 1 s)" -- \
  "$BIN" invoke sleeper --endpoint "$ENDPOINT" --payload '{}'
echo

# ---- the cold-start summary ----
say "cold-start summary: $SAMPLES cold invocations of echo, interleaved with docker run --rm of the same image"
tmp=$(mktemp -d)
for i in $(seq 1 "$SAMPLES"); do
  # ephemera: client-observed time of one cold invocation, and its phases.
  curl -sS -o /dev/null -D "$tmp/h" -w '%{time_total}\n' -X POST \
    "$ENDPOINT/2015-03-31/functions/echo/invocations" -d '{"i":'"$i"'}' >>"$tmp/ephemera"
  tr -d '\r' <"$tmp/h" | sed -n 's/^Server-Timing: //Ip' >>"$tmp/timing"
  # docker run --rm: the CLI creating, starting, waiting for and removing a container.
  s=$(date +%s.%N)
  echo '{}' | /usr/bin/docker run --rm -i --network host ephemera/echo:latest --stdio >/dev/null
  e=$(date +%s.%N)
  echo "$s $e" | awk '{printf "%.6f\n", $2 - $1}' >>"$tmp/dockerrun"
  printf '\r  %d/%d' "$i" "$SAMPLES" >&2
done
printf '\n' >&2

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
phase_median() { grep -o "$1;dur=[0-9.]*" "$tmp/timing" | cut -d= -f2 | median; }
eph=$(awk '{print $1*1000}' "$tmp/ephemera" | median)
drr=$(awk '{print $1*1000}' "$tmp/dockerrun" | median)
printf '\n  %-44s %10s\n' "median of $SAMPLES (ms)" "value"
printf '  %-44s %10.1f\n' "ephemera cold invoke (client-observed)" "$eph"
for p in create start init handler overhead total; do
  printf '  %-44s %10.1f\n' "  phase $p (Server-Timing)" "$(phase_median $p)"
done
printf '  %-44s %10.1f\n' "docker run --rm, same image (CLI)" "$drr"
printf '  %-44s %10.2f\n' "ratio ephemera / docker run --rm" "$(awk -v a="$eph" -v b="$drr" 'BEGIN{print a/b}')"
echo "  (bench/ has the full benchmark with the raw Docker floor: build/bin/ephemera bench --help)"
rm -rf "$tmp"

orders_rc=0
if ((run_orders)); then
  scripts/demo_orders.sh "$ENDPOINT" "$REDIS_PREFIX" || orders_rc=$?
  ((orders_rc == 0)) || say "the order flow part failed (exit $orders_rc, see above)"
fi

stop_daemon
trap - EXIT
# The run's Event queue, records and configs.
redis-cli --scan --pattern "$REDIS_PREFIX*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
# Only this daemon's: other daemons (tests, benchmarks) may share the engine.
left=$(/usr/bin/docker ps -aq --filter "label=ephemera.daemon=$DAEMON_PID" | wc -l)
others=$(/usr/bin/docker ps -aq --filter label=ephemera.managed | wc -l)
say "daemon stopped; containers of this daemon left behind: $left (other daemons' containers on the engine: $others)"
((left == 0 && orders_rc == 0))
