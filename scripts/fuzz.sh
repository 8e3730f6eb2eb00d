#!/usr/bin/env bash
# scripts/fuzz.sh: build the libFuzzer targets (tests/fuzz/) and run them for a bounded time.
#
#   scripts/fuzz.sh [--seconds N] [--log-dir DIR] [--no-build] [TARGET...]
#
# Without TARGET every target runs, one after the other, N seconds each (default 60). The
# build directory (EPHEMERA_FUZZ_BUILD, default build-fuzz) is configured with clang if it
# does not exist yet (CC=clang CXX=clang++ -DEPHEMERA_FUZZ=ON -DEPHEMERA_BUILD_TESTS=OFF
# -DEPHEMERA_BUILD_BENCH=OFF) and the fuzz_* targets are brought up to date unless
# --no-build. Each target starts from its seeds (tests/fuzz/corpus/<target>/, never
# written) plus what earlier runs found (<build>/fuzz-corpus/<target>/, where new inputs
# go). Crashing inputs are written to <build>/fuzz-artifacts/<target>/; the full libFuzzer
# output goes to DIR/<target>.log (default <build>/fuzz-logs).
#
# Prints one line per target: executions, coverage (libFuzzer's final "cov:" and "ft:"),
# corpus size, and "ok" or "CRASH <artifact>". Exits 1 if any target crashed (or found a
# leak or a timeout), 2 if it could not build or was called wrongly, else 0.
# Options:  --list   print the target names and exit.
# Environment: EPHEMERA_JOBS (build jobs, default 2), EPHEMERA_FUZZ_BUILD,
#   EPHEMERA_FUZZ_ARGS (extra libFuzzer flags, e.g. "-max_len=8192").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD=${EPHEMERA_FUZZ_BUILD:-build-fuzz}
JOBS=${EPHEMERA_JOBS:-2}
seconds=60 log_dir="" build=1 list=0
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds)
      [ $# -ge 2 ] || { echo "fuzz: --seconds needs a value" >&2; exit 2; }
      seconds=$2
      shift 2
      ;;
    --log-dir)
      [ $# -ge 2 ] || { echo "fuzz: --log-dir needs a value" >&2; exit 2; }
      log_dir=$2
      shift 2
      ;;
    --no-build) build=0; shift ;;
    --list) list=1; shift ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fuzz: unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *) targets+=("$1"); shift ;;
  esac
done
case $seconds in
  '' | *[!0-9]*) echo "fuzz: --seconds wants a whole number, got '$seconds'" >&2; exit 2 ;;
esac

# The target list lives in one place: tests/fuzz/CMakeLists.txt.
mapfile -t known < <(sed -n '/^set(EPHEMERA_FUZZ_TARGETS/,/)/p' tests/fuzz/CMakeLists.txt |
  sed 's/set(EPHEMERA_FUZZ_TARGETS//; s/)//' | tr -s ' \t' '\n' | grep -v '^$')
if [ "$list" = 1 ]; then
  printf '%s\n' "${known[@]}"
  exit 0
fi
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${known[@]}")
fi
for t in "${targets[@]}"; do
  if ! printf '%s\n' "${known[@]}" | grep -qx "$t"; then
    echo "fuzz: unknown target '$t' (known: ${known[*]})" >&2
    exit 2
  fi
done

if [ "$build" = 1 ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    echo "fuzz: configuring $BUILD with clang"
    if ! CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DEPHEMERA_FUZZ=ON -DEPHEMERA_BUILD_TESTS=OFF \
      -DEPHEMERA_BUILD_BENCH=OFF >"$BUILD.configure.log" 2>&1; then
      echo "fuzz: configuring failed, see $BUILD.configure.log" >&2
      exit 2
    fi
  fi
  build_targets=()
  for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
  echo "fuzz: building ${build_targets[*]} in $BUILD"
  if ! nice cmake --build "$BUILD" -j"$JOBS" --target "${build_targets[@]}" >"$BUILD/fuzz-build.log" 2>&1; then
    tail -n 30 "$BUILD/fuzz-build.log" >&2
    echo "fuzz: build failed, see $BUILD/fuzz-build.log" >&2
    exit 2
  fi
fi

log_dir=${log_dir:-$BUILD/fuzz-logs}
mkdir -p "$log_dir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

crashed=0
results=()
for t in "${targets[@]}"; do
  bin=$BUILD/bin/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing (run without --no-build)" >&2
    exit 2
  fi
  work=$BUILD/fuzz-corpus/$t
  artifacts=$BUILD/fuzz-artifacts/$t
  mkdir -p "$work" "$artifacts"
  log=$log_dir/$t.log
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048
    -artifact_prefix="$artifacts/")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  # shellcheck disable=SC2206 # word splitting of the extra flags is intended
  [ -n "${EPHEMERA_FUZZ_ARGS:-}" ] && args+=(${EPHEMERA_FUZZ_ARGS})
  before=$(find "$artifacts" -type f | wc -l)
  echo "fuzz: $t for ${seconds}s (log: $log)"
  rc=0
  "$bin" "${args[@]}" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  after=$(find "$artifacts" -type f | wc -l)
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    crashed=$((crashed + 1))
    newest=$(find "$artifacts" -type f -printf '%T@ %f\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
    kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)[^ ]*( [a-z-]+)?|runtime error|invariant broken: .*|deadly signal|timeout after' "$log" || true)
    status="CRASH (exit $rc) ${kind:-see log} ${newest:+$artifacts/$newest}"
  else
    status=ok
  fi
  line=$(printf '%-20s execs %-10s cov %-6s ft %-7s corpus %-10s %s' "$t" "${execs:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status")
  echo "fuzz: $line"
  results+=("$line")
done

echo "fuzz: summary (${seconds}s per target)"
printf '  %s\n' "${results[@]}"
if [ "$crashed" -gt 0 ]; then
  echo "fuzz: $crashed target(s) crashed; reproduce with $BUILD/bin/fuzz_<target> <artifact>"
  exit 1
fi
exit 0
