#!/usr/bin/env bash
# scripts/setup.sh: make this machine ready to build, test and run ephemera.
#
# On a fresh Debian bookworm, as root, with no prompts; safe to run again (it only does
# what is missing):
#   1. packages: installs the missing ones with apt (apt-get update only if one is missing);
#   2. services: starts dockerd if the Docker socket does not answer /_ping, and
#      redis-server if `redis-cli ping` fails, each detached with its log in
#      $EPHEMERA_LOG_DIR (default /var/log/ephemera). Every service it starts is appended
#      to $EPHEMERA_RUN_DIR/started (default /run/ephemera/started) as "<name> <pid>", so
#      .ci/run can stop exactly what was started;
#   3. build: cmake configure + build in build/ (RelWithDebInfo);
#   4. images: `make -f Makefile.docker images`, if Makefile.docker exists.
# Redis persists: ephemera answers 202 to an Event invocation only once it is in Redis, so
# Redis keeps an append-only file fsynced every second (--appendonly yes --appendfsync
# everysec, no RDB snapshots) in $EPHEMERA_STATE_DIR/redis (default /var/lib/ephemera/redis).
# A restart or a kill of Redis loses nothing it acknowledged; a crash of the machine can
# lose up to about the last second. EPHEMERA_REDIS_PERSIST=0 starts it without persistence
# (queued events and records are then lost on every Redis restart).
# It configures nothing else globally (no systemd units, no daemon.json, no users).
#
# Options:
#   --no-build        steps 1 and 2 only
#   --services-only   step 2 only (no apt; the binaries must be installed)
#   -h, --help        this text
# Environment: EPHEMERA_LOG_DIR, EPHEMERA_RUN_DIR, EPHEMERA_STATE_DIR (Redis's data),
# EPHEMERA_REDIS_PERSIST (default 1), DOCKER_HOST (unix:// or tcp://; a tcp
# engine is checked, never started), REDIS_URL (redis://host:port; started only if local),
# EPHEMERA_BUILD_DIR (default build), EPHEMERA_JOBS (default 2).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOG_DIR=${EPHEMERA_LOG_DIR:-/var/log/ephemera}
RUN_DIR=${EPHEMERA_RUN_DIR:-/run/ephemera}
STARTED_FILE=$RUN_DIR/started
BUILD_DIR=${EPHEMERA_BUILD_DIR:-build}
JOBS=${EPHEMERA_JOBS:-2}

PACKAGES=(build-essential cmake pkg-config libuv1-dev libcjson-dev libhiredis-dev
  libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev node-llhttp docker.io
  redis-server awscli busybox-static curl runc python3 clang-format clang libclang-rt-14-dev
  iproute2)

do_packages=1 do_services=1 do_build=1
for arg in "$@"; do
  case $arg in
    --no-build) do_build=0 ;;
    --services-only) do_packages=0 do_build=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup: unknown option $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

say() { echo "setup: $*"; }
die() {
  echo "setup: ERROR: $*" >&2
  exit 1
}

# ---- 1. packages ----

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    say "packages: all ${#PACKAGES[@]} present"
    return
  fi
  [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root: run as root or install them"
  say "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start dockerd or redis-server themselves (through invoke-rc.d):
  # step 2 starts them, detached and recorded, so .ci/run can stop exactly those. A
  # policy-rc.d that says "no" is the Debian way; ours exists only for the install.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# scripts/setup.sh: no service starts during package installs\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # also if apt-get is interrupted
  fi
  local rc=0
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
  } </dev/null || rc=$?
  if ((own_policy)); then
    rm -f "$policy"
    trap - EXIT
  fi
  ((rc == 0)) || die "packages: apt-get failed (exit $rc) installing ${missing[*]}"
  say "packages: installed ${#missing[@]}"
}

# ---- 2. services ----

# Appends "<name> <pid>" to the started file, after dropping lines whose process is gone,
# so the file only ever lists live processes this script started.
record_started() {
  local name=$1 pid=$2 n p keep=()
  mkdir -p "$RUN_DIR"
  if [[ -f $STARTED_FILE ]]; then
    while read -r n p _ || [[ -n ${n:-} ]]; do
      [[ -n ${n:-} && -n ${p:-} ]] || continue
      if [[ $(cat "/proc/$p/comm" 2>/dev/null || true) == "$n" ]]; then keep+=("$n $p"); fi
    done <"$STARTED_FILE"
  fi
  keep+=("$name $pid")
  printf '%s\n' "${keep[@]}" >"$STARTED_FILE.tmp"
  mv "$STARTED_FILE.tmp" "$STARTED_FILE"
}

# True if a process named $1 (exact comm) runs; prints its pids.
running() { pgrep -x "$1" 2>/dev/null; }

docker_socket() {
  case ${DOCKER_HOST:-} in
    "") echo /var/run/docker.sock ;;
    unix://*) echo "${DOCKER_HOST#unix://}" ;;
    *) echo "" ;;
  esac
}

docker_answers() {
  local sock
  sock=$(docker_socket)
  if [[ -n $sock ]]; then
    [[ -S $sock ]] && [[ $(curl -sS --max-time 3 --unix-socket "$sock" http://localhost/_ping 2>/dev/null) == OK ]]
  else
    local url=${DOCKER_HOST/tcp:\/\//http://}
    [[ $(curl -sS --max-time 3 "$url/_ping" 2>/dev/null) == OK ]]
  fi
}

start_dockerd() {
  local sock log pid waited=0
  sock=$(docker_socket)
  if docker_answers; then
    say "dockerd: already answering on ${sock:-$DOCKER_HOST}"
    return
  fi
  [[ -n $sock ]] || die "dockerd: DOCKER_HOST=$DOCKER_HOST does not answer /_ping; a remote engine is not started from here"
  command -v dockerd >/dev/null || die "dockerd: not installed (run scripts/setup.sh without --services-only)"
  log=$LOG_DIR/dockerd.log
  if pid=$(running dockerd | head -n1) && [[ -n $pid ]]; then
    # A dockerd that is still starting (or wedged): a second one would fight it over
    # /var/run/docker.pid, so wait for this one instead.
    say "dockerd: pid $pid is running but $sock does not answer yet; waiting for it"
    log="the log of whoever started dockerd pid $pid (not this script)"
  else
    [[ $sock == /var/run/docker.sock ]] || die "dockerd: DOCKER_HOST points at $sock, which does not answer; only the default socket is started from here"
    mkdir -p "$LOG_DIR"
    say "dockerd: starting (log: $log)"
    echo "=== scripts/setup.sh starting dockerd at $(date -u +%FT%TZ)" >>"$log"
    setsid dockerd >>"$log" 2>&1 </dev/null &
    pid=$!
    record_started dockerd "$pid"
  fi
  until docker_answers; do
    if [[ ! -d /proc/$pid ]]; then
      if [[ -f $log ]]; then
        echo "setup: dockerd (pid $pid) exited before answering; last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
      fi
      die "dockerd (pid $pid) exited before answering on $sock; see $log"
    fi
    if ((waited >= 60)); then
      if [[ -f $log ]]; then
        echo "setup: last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
      fi
      die "dockerd (pid $pid) did not answer on $sock within 60 s; see $log"
    fi
    if ((waited > 0 && waited % 5 == 0)); then say "dockerd: waiting for $sock (${waited} s)"; fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd: answering on $sock (pid $pid, ${waited} s)"
}

redis_host_port() {
  local url=${REDIS_URL:-redis://127.0.0.1:6379} hostport
  hostport=${url#redis://}
  hostport=${hostport##*@}
  hostport=${hostport%%/*}
  REDIS_HOST=${hostport%%:*}
  REDIS_PORT=6379
  [[ $hostport == *:* ]] && REDIS_PORT=${hostport##*:}
  [[ -n $REDIS_HOST ]] || REDIS_HOST=127.0.0.1
}

redis_answers() { [[ $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

start_redis() {
  local log pid waited=0 args
  redis_host_port
  command -v redis-cli >/dev/null || die "redis: redis-cli not installed (run scripts/setup.sh without --services-only)"
  if redis_answers; then
    say "redis: already answering on $REDIS_HOST:$REDIS_PORT"
    return
  fi
  case $REDIS_HOST in
    127.0.0.1 | localhost | ::1) ;;
    *) die "redis: $REDIS_HOST:$REDIS_PORT does not answer; a remote Redis is not started from here" ;;
  esac
  command -v redis-server >/dev/null || die "redis: redis-server not installed (run scripts/setup.sh without --services-only)"
  log=$LOG_DIR/redis.log
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  args=(--port "$REDIS_PORT" --bind 127.0.0.1 --daemonize no)
  if [[ ${EPHEMERA_REDIS_PERSIST:-1} == 1 ]]; then
    local data=${EPHEMERA_STATE_DIR:-/var/lib/ephemera}/redis
    mkdir -p "$data"
    args+=(--dir "$data" --save "" --appendonly yes --appendfsync everysec)
  else
    args+=(--dir "$RUN_DIR" --save "" --appendonly no)
  fi
  say "redis: starting on 127.0.0.1:$REDIS_PORT (log: $log)"
  echo "=== scripts/setup.sh starting redis-server at $(date -u +%FT%TZ)" >>"$log"
  setsid redis-server "${args[@]}" >>"$log" 2>&1 </dev/null &
  pid=$!
  record_started redis-server "$pid"
  until redis_answers; do
    if [[ ! -d /proc/$pid ]]; then
      echo "setup: redis-server (pid $pid) exited before answering; last lines of $log:" >&2
      tail -n 20 "$log" >&2 || true
      die "redis-server did not start; see $log"
    fi
    if ((waited >= 30)); then die "redis-server (pid $pid) did not answer within 30 s; see $log"; fi
    sleep 1
    waited=$((waited + 1))
  done
  say "redis: answering on 127.0.0.1:$REDIS_PORT (pid $pid)"
}

# ---- 3. build, 4. images ----

build() {
  say "build: cmake configure in $BUILD_DIR (RelWithDebInfo)"
  # Warnings are errors in the project's own builds (a user's plain cmake build keeps them
  # as warnings: EPHEMERA_WERROR is off by default).
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPHEMERA_WERROR=ON </dev/null
  say "build: compiling with $JOBS jobs"
  cmake --build "$BUILD_DIR" -j "$JOBS" </dev/null
  say "build: done"
}

images() {
  if [[ ! -f Makefile.docker ]]; then
    say "images: no Makefile.docker, skipped"
    return
  fi
  say "images: make -f Makefile.docker images"
  make -f Makefile.docker images </dev/null
  say "images: done"
}

if ((do_packages)); then install_packages; fi
if ((do_services)); then
  start_dockerd
  start_redis
fi
if ((do_build)); then
  build
  images
fi
say "ready"
