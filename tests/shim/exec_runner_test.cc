// tests/shim/exec_runner_test.cc: exec-mode process runs with /bin/sh commands on the host.
#include "shim/exec_runner.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

namespace ephemera::shim {
namespace {

ExecResult RunScript(const std::string& script, std::string_view input = "",
                     std::vector<std::string> env = {}) {
  ExecOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.extra_env = std::move(env);
  options.stderr_forward_fd = -1;  // keep the test output clean
  ExecResult result;
  RunProcess(options, input, &result);
  return result;
}

TEST(ExecRunner, CopiesOneMebibyteOfBinaryBytesExactly) {
  std::string input(1 << 20, '\0');
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>((i * 2654435761u) >> 13);
  ExecResult r = RunScript("cat", input);
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kExited);
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.output.size(), input.size());
  EXPECT_TRUE(r.output == input);
}

TEST(ExecRunner, LargeStderrAndStdoutTogetherDoNotDeadlock) {
  // Writes 1 MiB to stderr before reading stdin: both pipes must be drained while the
  // event is still being written.
  std::string input(1 << 20, 'i');
  ExecResult r = RunScript("head -c 1048576 /dev/zero >&2; cat", input);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.size(), input.size());
  EXPECT_EQ(r.stderr_tail.size(), 4096u);
}

TEST(ExecRunner, NonZeroExitKeepsStderrTail) {
  ExecResult r = RunScript("echo first >&2; echo 'last words' >&2; exit 3");
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.stderr_tail, "first\nlast words\n");
}

TEST(ExecRunner, ReportsDeathBySignal) {
  ExecResult r = RunScript("kill -9 $$");
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kSignaled);
  EXPECT_EQ(r.signal, 9);
  EXPECT_EQ(DescribeSignal(9), "signal 9 (SIGKILL)");
}

TEST(ExecRunner, PassesInvocationEnvironment) {
  ExecResult r = RunScript("printf '%s|%s' \"$AWS_LAMBDA_REQUEST_ID\" \"$_X_AMZN_TRACE_ID\"", "",
                           {"AWS_LAMBDA_REQUEST_ID=req-1", "_X_AMZN_TRACE_ID=Root=1-abc"});
  EXPECT_EQ(r.output, "req-1|Root=1-abc");
}

TEST(ExecRunner, ChildThatIgnoresStdinStillCompletes) {
  ExecResult r = RunScript("echo done", std::string(4 << 20, 'x'));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "done\n");
}

TEST(ExecRunner, OrphanHoldingThePipeDoesNotHangTheRun) {
  auto start = std::chrono::steady_clock::now();
  ExecResult r = RunScript("sleep 5 & echo hi");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.output, "hi\n");
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST(ExecRunner, MissingCommandIsDetectedBeforeAndAtExec) {
  Status st = CheckExecutable("/no/such/program");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "cannot run /no/such/program: No such file or directory");
  EXPECT_FALSE(CheckExecutable("no-such-program-in-path").ok());
  EXPECT_TRUE(CheckExecutable("sh").ok());
  EXPECT_FALSE(CheckExecutable("/etc/passwd").ok());  // not executable
  EXPECT_FALSE(CheckExecutable("/tmp").ok());         // a directory

  ExecOptions options;
  options.argv = {"/no/such/program"};
  ExecResult r;
  RunProcess(options, "event", &r);
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kExecFailed);
  EXPECT_EQ(r.exec_errno, ENOENT);
  EXPECT_EQ(r.spawn_error, "cannot run /no/such/program: No such file or directory");
}

TEST(ExecRunner, ReapsOrphanedGrandchildren) {
  // Make this test process the reaper of its orphans, as PID 1 is in a container.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  ExecResult r = RunScript("sleep 0.1 >/dev/null 2>&1 & sleep 0.1 >/dev/null 2>&1 & echo started");
  EXPECT_EQ(r.output, "started\n");
  int total = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (total < 2 && std::chrono::steady_clock::now() < deadline) {
    int reaped = 0;
    ReapChildren(-1, nullptr, &reaped);
    total += reaped;
    if (total < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(total, 2);
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);  // no zombie left
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace ephemera::shim
