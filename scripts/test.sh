#!/usr/bin/env bash
# scripts/test.sh: everything CI checks, in order, with one summary line at the end.
#
#   1. scripts/setup.sh (packages, dockerd + Redis, build in build/, images);
#   2. unit tests:         ctest --test-dir build -L unit
#   3. integration tests:  ctest --test-dir build -L integration (real dockerd and Redis)
#   4. other ctest labels, if any test carries neither label;
#   5. sanitizers: an ASan/UBSan build in build-asan (-DEPHEMERA_SANITIZE=ON,
#      -DEPHEMERA_BUILD_BENCH=OFF) running the unit tests, then the integration tests and
#      the end-to-end scripts against the sanitized daemon (with the normal static shim
#      from build/, EPHEMERA_TEST_SHIM: a sanitized shim cannot run in FROM scratch images);
#   6. end-to-end: every tests/e2e/*.sh, each run with bash (failure fails the run);
#   7. fuzzing: each fuzz target for a short bounded time (scripts/fuzz.sh --seconds N,
#      EPHEMERA_FUZZ_SECONDS, default 10; libFuzzer seed 1 unless EPHEMERA_FUZZ_ARGS says
#      otherwise), if clang is installed.
# A step that cannot run (setup or a build fails) counts as one failure and the steps that
# need it are skipped. The last line is "N passed, N failed" (N counts ctest tests and e2e
# scripts); the exit status is non-zero if anything failed.
#
# Options:  --skip-setup   use the existing build/ (for quick local runs)
#           --no-asan      skip step 5
# Environment: EPHEMERA_JOBS (default 2), EPHEMERA_TEST_TIMEOUT (per ctest test, default
# 300 s), EPHEMERA_E2E_TIMEOUT (per e2e script, default 600 s).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${EPHEMERA_JOBS:-2}
TEST_TIMEOUT=${EPHEMERA_TEST_TIMEOUT:-300}
E2E_TIMEOUT=${EPHEMERA_E2E_TIMEOUT:-600}
run_setup=1 run_asan=1
for arg in "$@"; do
  case $arg in
    --skip-setup) run_setup=0 ;;
    --no-asan) run_asan=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test: unknown option $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

passed=0 failed=0
failures=()
say() { echo "test: $*"; }
fail_step() {
  failed=$((failed + 1))
  failures+=("$1")
  say "FAILED: $1"
}

# Runs ctest with the given arguments and adds its counts to the totals. ctest's summary
# line is "NN% tests passed, F tests failed out of T"; without one (ctest itself failed),
# the step counts as one failure.
run_ctest() {
  local what=$1 out summary total nfail t0=$SECONDS
  shift
  say "$what: ctest $*"
  out=$(mktemp)
  local rc=0
  ctest --output-on-failure --timeout "$TEST_TIMEOUT" "$@" </dev/null 2>&1 | tee "$out" || rc=$?
  if grep -q "No tests were found" "$out"; then
    say "$what: no tests"
    rm -f "$out"
    return
  fi
  summary=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n1 || true)
  rm -f "$out"
  if [[ -z $summary ]]; then
    fail_step "$what (ctest exited $rc without a summary)"
    return
  fi
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
  total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
  if ((nfail > 0)); then failures+=("$what: $nfail of $total tests"); fi
  if ((rc != 0 && nfail == 0)); then fail_step "$what (ctest exited $rc)"; fi
  say "$what: $((total - nfail)) passed, $nfail failed ($((SECONDS - t0)) s)"
}

build_ok=1
if ((run_setup)); then
  say "setup: scripts/setup.sh"
  t0=$SECONDS
  if scripts/setup.sh; then
    say "setup: done ($((SECONDS - t0)) s)"
  else
    fail_step "scripts/setup.sh"
    # Without services the build may still be usable for unit tests.
    [[ -f build/CTestTestfile.cmake ]] || build_ok=0
  fi
fi
[[ -f build/CTestTestfile.cmake ]] || build_ok=0

if ((build_ok)); then
  run_ctest "unit" --test-dir build -L unit -j "$JOBS"
  run_ctest "integration" --test-dir build -L integration
  run_ctest "other labels" --test-dir build -LE '^(unit|integration)$'
else
  fail_step "no usable build in build/: unit and integration tests not run"
fi

if ((run_asan)); then
  say "asan: configure build-asan (EPHEMERA_SANITIZE=ON, EPHEMERA_BUILD_BENCH=OFF)"
  if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEPHEMERA_SANITIZE=ON \
    -DEPHEMERA_BUILD_BENCH=OFF -DEPHEMERA_WERROR=ON </dev/null >/dev/null &&
    cmake --build build-asan -j "$JOBS" </dev/null; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      run_ctest "asan unit" --test-dir build-asan -L unit -j "$JOBS"
    if ((build_ok)); then
      # The sanitized daemon against the real engine, with build/'s static shim.
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        EPHEMERA_TEST_SHIM=$PWD/build/bin/ephemera-shim \
        run_ctest "asan integration" --test-dir build-asan -L integration
      asan_e2e=1
    fi
  else
    fail_step "asan build (build-asan)"
  fi
fi

shopt -s nullglob
e2e=(tests/e2e/*.sh)
if ((${#e2e[@]} == 0)); then
  say "e2e: no tests/e2e/*.sh"
fi
for script in "${e2e[@]}"; do
  say "e2e: $script"
  t0=$SECONDS
  if timeout --kill-after=10 "$E2E_TIMEOUT" bash "$script" </dev/null; then
    passed=$((passed + 1))
    say "e2e: $script passed ($((SECONDS - t0)) s)"
  else
    rc=$?
    ((rc == 124)) && say "e2e: $script timed out after $E2E_TIMEOUT s"
    fail_step "e2e $script (exit $rc)"
  fi
done

# The end-to-end scripts once more against the sanitized daemon.
if ((${asan_e2e:-0})); then
  for script in "${e2e[@]}"; do
    say "asan e2e: $script"
    t0=$SECONDS
    if EPHEMERA_BUILD_DIR=build-asan EPHEMERA_TEST_SHIM=$PWD/build/bin/ephemera-shim \
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
      timeout --kill-after=10 "$E2E_TIMEOUT" bash "$script" </dev/null; then
      passed=$((passed + 1))
      say "asan e2e: $script passed ($((SECONDS - t0)) s)"
    else
      fail_step "asan e2e $script (exit $?)"
    fi
  done
fi

# Every fuzz target for a short bounded time (the long runs are scripts/fuzz.sh's job).
if command -v clang++ >/dev/null && [[ -x scripts/fuzz.sh ]]; then
  say "fuzz: scripts/fuzz.sh --seconds ${EPHEMERA_FUZZ_SECONDS:-10}"
  t0=$SECONDS
  # A fixed seed makes this step the same run every time (the long, random-seeded runs are
  # scripts/fuzz.sh's own job): what it checks was checked before it landed.
  if EPHEMERA_FUZZ_ARGS=${EPHEMERA_FUZZ_ARGS:--seed=1} \
    scripts/fuzz.sh --seconds "${EPHEMERA_FUZZ_SECONDS:-10}" </dev/null; then
    passed=$((passed + 1))
    say "fuzz: passed ($((SECONDS - t0)) s)"
  else
    fail_step "fuzz (scripts/fuzz.sh exit $?)"
  fi
else
  say "fuzz: skipped (no clang++ or no scripts/fuzz.sh)"
fi

for f in "${failures[@]}"; do say "failed: $f"; done
say "total time $((SECONDS / 60)) min $((SECONDS % 60)) s"
echo "$passed passed, $failed failed"
((failed == 0))
