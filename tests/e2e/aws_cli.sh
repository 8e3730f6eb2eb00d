#!/usr/bin/env bash
# tests/e2e/aws_cli.sh: the real AWS CLI (Debian's awscli v2, /usr/bin/aws) against the
# real daemon and dockerd. Invoke (all three types), --log-type Tail, function errors,
# the control plane, and the error codes the CLI prints (v2 exits 254 on service errors). Exit 0 only if every check held.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${EPHEMERA_BUILD_DIR:-build}/bin/ephemera
AWS=/usr/bin/aws
[[ -x $AWS ]] || { echo "aws_cli: $AWS missing (apt-get install awscli)"; exit 1; }
[[ -x $BIN ]] || { echo "aws_cli: $BIN missing (build first)"; exit 1; }

tmp=$(mktemp -d)
shim_args=()
[[ -n ${EPHEMERA_TEST_SHIM:-} ]] && shim_args=(--shim "$EPHEMERA_TEST_SHIM")
setsid "$BIN" serve --listen 127.0.0.1:0 --state "$tmp/state.json" "${shim_args[@]}" >"$tmp/stdout" 2>"$tmp/daemon.log" </dev/null &
daemon=$!
cleanup() {
  kill -TERM "$daemon" 2>/dev/null
  wait "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/stdout")
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { echo "aws_cli: the daemon did not start"; cat "$tmp/daemon.log"; exit 1; }

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1 AWS_PAGER=""
lambda() { "$AWS" lambda --endpoint-url "http://127.0.0.1:$port" --cli-read-timeout 0 "$@"; }

pass=0 fail=0
check() {  # check NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
    echo "ok   $name"
  else
    fail=$((fail + 1))
    echo "FAIL $name"
  fi
}
contains() { [[ $1 == *"$2"* ]] || { echo "     expected to find: $2"; echo "     in: ${1:0:400}"; return 1; }; }
equals() { [[ $1 == "$2" ]] || { echo "     expected: $2"; echo "     got:      ${1:0:400}"; return 1; }; }

# RequestResponse: the payload round-trips; exit 0.
out=$(lambda invoke --function-name echo --cli-binary-format raw-in-base64-out --payload '{"k":"v"}' "$tmp/out.json" 2>&1)
rc=$?
check "invoke RequestResponse exits 0" equals "$rc" 0
check "invoke RequestResponse StatusCode 200" contains "$out" '"StatusCode": 200'
check "invoke RequestResponse payload" equals "$(cat "$tmp/out.json")" '{"k":"v"}'
check "invoke ExecutedVersion" contains "$out" '"ExecutedVersion": "$LATEST"'

# Event and DryRun.
out=$(lambda invoke --function-name echo --invocation-type Event --cli-binary-format raw-in-base64-out --payload '{}' "$tmp/ev.json" 2>&1)
check "invoke Event StatusCode 202" contains "$out" '"StatusCode": 202'
out=$(lambda invoke --function-name echo --invocation-type DryRun "$tmp/dry.json" 2>&1)
check "invoke DryRun StatusCode 204" contains "$out" '"StatusCode": 204'

# Function error: still exit 0, FunctionError set, the error JSON in the outfile.
out=$(lambda invoke --function-name crash --log-type Tail "$tmp/crash.json" 2>&1)
rc=$?
check "function error exits 0" equals "$rc" 0
check "function error FunctionError Unhandled" contains "$out" '"FunctionError": "Unhandled"'
check "function error body" contains "$(cat "$tmp/crash.json")" 'Runtime exited with error: exit status 3'
logs=$(sed -n 's/.*"LogResult": "\([^"]*\)".*/\1/p' <<<"$out" | base64 -d 2>/dev/null)
check "log tail START" contains "$logs" "START RequestId: "
check "log tail output" contains "$logs" "about to crash"
check "log tail END" contains "$logs" "END RequestId: "
check "log tail REPORT" contains "$logs" "Max Memory Used: "

# Client context reaches the invocation without complaint.
ctx=$(printf '{"custom":{"who":"cli"}}' | base64 -w0)
out=$(lambda invoke --function-name echo --client-context "$ctx" --cli-binary-format raw-in-base64-out --payload '{}' "$tmp/ctx.json" 2>&1)
check "client context accepted" contains "$out" '"StatusCode": 200'

# Service errors: exit 255 and the error code on stderr.
out=$(lambda invoke --function-name no-such-fn "$tmp/x.json" 2>&1)
rc=$?
# CLI v2 exits 254 on an error the service returned (v1 exited 255).
check "unknown function exits 254" equals "$rc" 254
check "unknown function ResourceNotFoundException" contains "$out" "(ResourceNotFoundException)"
out=$(lambda invoke --function-name echo --cli-binary-format raw-in-base64-out --payload 'not json' "$tmp/x.json" 2>&1)
check "non-JSON payload InvalidRequestContentException" contains "$out" "(InvalidRequestContentException)"
head -c 6396314 /dev/zero | tr '\0' 'a' | sed 's/^/"/; s/$/"/' >"$tmp/big.json"
out=$(lambda invoke --function-name echo --payload "fileb://$tmp/big.json" "$tmp/x.json" 2>&1)
check "6.1 MiB payload RequestEntityTooLargeException" contains "$out" "(RequestEntityTooLargeException)"
out=$(lambda invoke --function-name 'bad name!' "$tmp/x.json" 2>&1)
rc=$?
check "bad function name exits 254" equals "$rc" 254
check "bad function name InvalidParameterValueException" contains "$out" "(InvalidParameterValueException)"

# Control plane.
out=$(lambda create-function --function-name cli-made --package-type Image \
  --code ImageUri=ephemera/shout:latest --role arn:aws:iam::000000000000:role/x --timeout 5 --memory-size 256 2>&1)
check "create-function" contains "$out" '"FunctionName": "cli-made"'
out=$(lambda create-function --function-name cli-made --package-type Image \
  --code ImageUri=ephemera/shout:latest --role arn:aws:iam::000000000000:role/x 2>&1)
check "create-function twice ResourceConflictException" contains "$out" "(ResourceConflictException)"
out=$(lambda get-function --function-name cli-made 2>&1)
check "get-function ImageUri" contains "$out" '"ImageUri": "ephemera/shout:latest"'
check "get-function MemorySize" contains "$out" '"MemorySize": 256'
out=$(lambda list-functions 2>&1)
check "list-functions has cli-made" contains "$out" '"FunctionName": "cli-made"'
check "list-functions has echo" contains "$out" '"FunctionName": "echo"'
lambda invoke --function-name cli-made --cli-binary-format raw-in-base64-out --payload '"made here"' "$tmp/made.json" >/dev/null 2>&1
check "invoke created function" equals "$(cat "$tmp/made.json")" '"MADE HERE"'
out=$(lambda delete-function --function-name cli-made 2>&1)
rc=$?
check "delete-function exits 0" equals "$rc" 0
out=$(lambda get-function --function-name cli-made 2>&1)
check "get deleted function ResourceNotFoundException" contains "$out" "(ResourceNotFoundException)"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").writestr("h.py", "")' "$tmp/code.zip"
out=$(lambda create-function --function-name zipped --runtime python3.12 --handler h \
  --zip-file "fileb://$tmp/code.zip" --role arn:aws:iam::000000000000:role/x 2>&1)
check "zip package refused with a clear message" contains "$out" "(InvalidParameterValueException)"

# 429: a function limited to one invocation at a time and no admission queue, invoked twice
# at once (with a queue, the second would wait for the first).
lambda create-function --function-name one-at-a-time --package-type Image \
  --code ImageUri=ephemera/busybox:latest --role arn:aws:iam::000000000000:role/x --timeout 10 \
  --image-config 'EntryPoint=sh,-c,sleep 3; cat' \
  --environment 'Variables={EPHEMERA_CONCURRENCY=1,EPHEMERA_QUEUE_SIZE=0}' >/dev/null 2>&1
lambda invoke --function-name one-at-a-time --cli-binary-format raw-in-base64-out --payload '{}' "$tmp/slow.json" >/dev/null 2>&1 &
slow=$!
for _ in $(seq 1 100); do
  [[ -n $(/usr/bin/docker ps -q --filter label=ephemera.function=one-at-a-time) ]] && break
  sleep 0.05
done
out=$(lambda invoke --function-name one-at-a-time --cli-binary-format raw-in-base64-out --payload '{}' "$tmp/x.json" 2>&1)
rc=$?
check "over the concurrency limit exits 254" equals "$rc" 254
check "over the concurrency limit TooManyRequestsException" contains "$out" "(TooManyRequestsException)"
wait "$slow"
check "the admitted invocation still answers" equals "$(cat "$tmp/slow.json")" '{}'

kill -TERM "$daemon"
wait "$daemon"
rc=$?
check "daemon exits 0 on SIGTERM" equals "$rc" 0
left=$(/usr/bin/docker ps -aq --filter "label=ephemera.daemon=$daemon" | wc -l)
check "no containers left" equals "$left" 0

# 503: a daemon whose Docker engine cannot be reached says so.
setsid "$BIN" serve --listen 127.0.0.1:0 --state none --docker /tmp/no-such-docker.sock \
  >"$tmp/stdout2" 2>"$tmp/daemon2.log" </dev/null &
daemon=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/stdout2")
  [[ -n $port ]] && break
  sleep 0.05
done
out=$(lambda invoke --function-name echo --cli-binary-format raw-in-base64-out --payload '{}' "$tmp/x.json" 2>&1)
rc=$?
check "unreachable engine exits 254" equals "$rc" 254
check "unreachable engine ServiceException naming the socket" contains "$out" "no-such-docker.sock"
kill -TERM "$daemon"
wait "$daemon"
trap 'rm -rf "$tmp"' EXIT

echo "aws_cli: $pass passed, $fail failed"
((fail == 0))
