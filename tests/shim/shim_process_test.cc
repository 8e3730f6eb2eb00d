// tests/shim/shim_process_test.cc: the real ephemera-shim binary, run as a child process
// against a fake Runtime API in this test (no docker needed).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "shim/json.h"
#include "tests/shim/fake_runtime_api.h"

extern char** environ;

namespace ephemera::shim {
namespace {

using testing::FakeHttpServer;
using testing::FakeReply;
using testing::FakeRequest;
using testing::FakeRuntimeApi;
using testing::kInitError;
using testing::kNext;
using Clock = std::chrono::steady_clock;

// The shim as a child process with its stderr in a temporary file.
class ShimProcess {
 public:
  // Runs `binary` (the shim unless given) with `command` as its arguments.
  ShimProcess(const std::string& endpoint, const std::vector<std::string>& command,
              const std::vector<std::string>& extra_env = {},
              const std::string& binary = EPHEMERA_SHIM_BINARY) {
    char path[] = "/tmp/shim-stderr-XXXXXX";
    int fd = mkstemp(path);
    stderr_path_ = path;
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry(*e);
      if (entry.rfind("EPHEMERA_", 0) == 0 || entry.rfind("AWS_LAMBDA_RUNTIME_API=", 0) == 0) {
        continue;
      }
      env.push_back(entry);
    }
    env.push_back("AWS_LAMBDA_RUNTIME_API=" + endpoint);
    for (const auto& x : extra_env) env.push_back(x);
    std::vector<std::string> args = {binary};
    args.insert(args.end(), command.begin(), command.end());
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fd, 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    started_ = Clock::now();
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(fd);
  }

  ~ShimProcess() {
    // SIGTERM first, so the shim stops what it started (its children lead their own
    // process groups and would outlive a SIGKILLed shim on the host).
    int status;
    if (pid_ > 0) kill(pid_, SIGTERM);
    if (pid_ > 0 && !WaitExit(4000, &status)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unlink(stderr_path_.c_str());
  }

  // Waits for the shim to exit; false on timeout. Polls: the shim is not our only child.
  bool WaitExit(int timeout_ms, int* status) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      if (waitpid(pid_, status, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  void Signal(int signo) { kill(pid_, signo); }

  // Waits until the shim's stderr (where it forwards the function's) contains `text`.
  bool WaitForStderr(const std::string& text, int timeout_ms = 10000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      if (Stderr().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  Clock::time_point started() const { return started_; }

  std::string Stderr() const {
    std::ifstream in(stderr_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string stderr_path_;
  Clock::time_point started_;
};

JsonValue ParseJson(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_TRUE(JsonValue::Parse(text, &v, &error)) << error << " in " << text;
  return v;
}

uint16_t FreePort() {
  FakeHttpServer probe([](const FakeRequest&) { return FakeReply::Simple(200, ""); });
  return probe.port();
}

TEST(ShimProcess, ExecModeReturnsEventByteExactAndStopsOnSigterm) {
  std::string event(1 << 20, '\0');
  for (size_t i = 0; i < event.size(); ++i) event[i] = static_cast<char>(i * 131 + (i >> 9));
  FakeRuntimeApi api({event});
  ShimProcess shim(api.endpoint(), {"/bin/cat"});
  ASSERT_TRUE(api.server().WaitForRequests(1));
  auto first_next = Clock::now() - shim.started();
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body.size(), event.size());
  EXPECT_TRUE(post.body == event);
  ASSERT_TRUE(api.server().WaitForRequests(3));  // the shim came back for more
  EXPECT_EQ(api.server().requests()[2].target, kNext);
  EXPECT_EQ(api.server().connections(), 1);  // one keep-alive connection throughout
  shim.Signal(SIGTERM);
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::printf("[ measure ] shim spawn -> first GET /next: %.2f ms\n",
              std::chrono::duration<double, std::milli>(first_next).count());
}

TEST(ShimProcess, MissingCommandPostsInitErrorBeforeAnyNext) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(api.endpoint(), {"/no/such/program", "arg"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost(kInitError, &post)) << shim.Stderr();
  JsonValue body = ParseJson(post.body);
  EXPECT_EQ(*body.FindString("errorType"), "Runtime.InvalidEntrypoint");
  EXPECT_EQ(*body.FindString("errorMessage"),
            "exec mode: cannot run /no/such/program: No such file or directory");
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Runtime.InvalidEntrypoint");
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  for (const auto& r : api.server().requests()) EXPECT_NE(r.target, kNext);
  EXPECT_NE(shim.Stderr().find("ephemera-shim: exec mode: cannot run /no/such/program"),
            std::string::npos);
}

TEST(ShimProcess, NoCommandPostsInitError) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(api.endpoint(), {});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost(kInitError, &post));
  EXPECT_NE(post.body.find("no command to run"), std::string::npos) << post.body;
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

TEST(ShimProcess, NonZeroExitPostsFunctionErrorWithStderrTail) {
  FakeRuntimeApi api({"{}", "{}"});
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "echo oops >&2; exit 7"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/error", &post)) << shim.Stderr();
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Function.ExitStatus");
  JsonValue body = ParseJson(post.body);
  EXPECT_EQ(*body.FindString("errorType"), "Function.ExitStatus");
  const std::string& message = *body.FindString("errorMessage");
  EXPECT_NE(message.find("exited with status 7"), std::string::npos) << message;
  EXPECT_NE(message.find("oops"), std::string::npos) << message;
  // The environment survives a function error: the second event is served too.
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/error", &post));
  EXPECT_NE(shim.Stderr().find("oops"), std::string::npos);  // forwarded to the log
}

TEST(ShimProcess, SigtermIsForwardedToTheRunningFunction) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(
      api.endpoint(),
      {"/bin/sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready >&2; sleep 30 & wait"});
  ASSERT_TRUE(shim.WaitForStderr("ready"));  // the trap is installed
  shim.Signal(SIGTERM);
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post, 3000)) << shim.Stderr();
  EXPECT_EQ(post.body, "got-term\n");
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ShimProcess, FunctionIgnoringSigtermIsKilledAfterGrace) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "trap '' TERM; echo ready >&2; sleep 30"});
  ASSERT_TRUE(shim.WaitForStderr("ready"));
  auto sent = Clock::now();
  shim.Signal(SIGTERM);
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/error", &post, 5000)) << shim.Stderr();
  EXPECT_NE(post.body.find("SIGKILL"), std::string::npos) << post.body;
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  auto took = Clock::now() - sent;
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(4000));
}

std::string ApiGatewayV1Get(const std::string& path, const std::string& name) {
  return R"({"resource":"/{proxy+}","path":")" + path +
         R"(","httpMethod":"GET","headers":{"Cookie":"k=v"},"multiValueHeaders":{"Cookie":["k=v"]},)"
         R"("queryStringParameters":{"name":")" +
         name + R"("},"multiValueQueryStringParameters":{"name":[")" + name +
         R"("]},"body":null,"isBase64Encoded":false})";
}

TEST(ShimProcess, HttpModeForwardsApiGatewayAndRawEventsToBusyboxHttpd) {
  if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
  uint16_t port = FreePort();
  std::string v2_post =
      R"({"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"",)"
      R"("headers":{"content-type":"text/plain"},"requestContext":{"http":)"
      R"({"method":"POST","path":"/"}},"body":"aGVsbG8gdjI=","isBase64Encoded":true})";
  FakeRuntimeApi api({ApiGatewayV1Get("/cgi-bin/hello", "bob"), v2_post, R"({"raw":1})"});
  ShimProcess shim(api.endpoint(),
                   {"/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(port), "-h",
                    std::string(EPHEMERA_SOURCE_DIR) + "/functions/webapp/www"},
                   {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(port)});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  JsonValue v1 = ParseJson(post.body);
  EXPECT_EQ(v1.Find("statusCode")->text(), "200");
  EXPECT_EQ(*v1.FindString("body"), "{\"hello\":\"bob\",\"cookie\":\"k=v\"}\n");
  const JsonValue* cookies = v1.Find("multiValueHeaders")->Find("Set-Cookie");
  ASSERT_NE(cookies, nullptr) << post.body;
  EXPECT_EQ(cookies->items().size(), 2u);

  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  JsonValue v2 = ParseJson(post.body);
  EXPECT_EQ(*v2.FindString("body"), "hello v2");
  EXPECT_EQ(*v2.Find("headers")->FindString("Content-Type"), "text/plain");
  EXPECT_TRUE(v2.Find("cookies")->is_array());

  ASSERT_TRUE(api.WaitForPost("/invocation/req-3/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, R"({"raw":1})");  // POSTed to / and echoed by index.cgi
  shim.Signal(SIGTERM);
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(4000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ShimProcess, HttpModeInitTimeoutPostsInitErrorWithServiceOutput) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "echo starting up; exec sleep 30"},
                   {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(FreePort()),
                    "EPHEMERA_INIT_TIMEOUT_MS=300"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost(kInitError, &post)) << shim.Stderr();
  JsonValue body = ParseJson(post.body);
  EXPECT_EQ(*body.FindString("errorType"), "Runtime.ServiceNotReady");
  const std::string& message = *body.FindString("errorMessage");
  EXPECT_NE(message.find("within 300 ms"), std::string::npos) << message;
  EXPECT_NE(message.find("starting up"), std::string::npos) << message;
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(4000, &status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

TEST(ShimProcess, HttpModeServiceExitingFirstPostsInitError) {
  FakeRuntimeApi api({"{}"});
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "echo boom >&2; exit 3"},
                   {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(FreePort())});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost(kInitError, &post)) << shim.Stderr();
  JsonValue body = ParseJson(post.body);
  EXPECT_EQ(*body.FindString("errorType"), "Runtime.ServiceExited");
  const std::string& message = *body.FindString("errorMessage");
  EXPECT_NE(message.find("exited with status 3"), std::string::npos) << message;
  EXPECT_NE(message.find("boom"), std::string::npos) << message;
}

TEST(ShimProcess, HttpModeExitsWhenTheServiceDiesBetweenEvents) {
  if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
  uint16_t port = FreePort();
  FakeRuntimeApi api({});  // no events: the shim sits in GET /next
  ShimProcess shim(
      api.endpoint(),
      {"/bin/busybox", "sh", "-c",
       "busybox httpd -f -p 127.0.0.1:" + std::to_string(port) + " -h / & sleep 0.5; exit 4"},
      {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(port)});
  ASSERT_TRUE(api.server().WaitForRequests(1)) << shim.Stderr();  // listening, polling
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(4000, &status)) << shim.Stderr();
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(shim.Stderr().find("exited with status 4 while waiting for an event"),
            std::string::npos)
      << shim.Stderr();
}

// Not a pass/fail check: prints what one event costs in exec mode (a process per event)
// versus native mode (a function call), with the same echo binary.
TEST(ShimProcess, MeasuresExecVersusNativePerEvent) {
  constexpr int kEvents = 100;
  auto measure = [&](const std::vector<std::string>& command, const std::string& binary) {
    FakeRuntimeApi api(std::vector<std::string>(kEvents, "{\"n\":1}"));
    ShimProcess process(api.endpoint(), command, {}, binary);
    EXPECT_TRUE(api.server().WaitForRequests(1));
    auto start = Clock::now();
    FakeRequest post;
    EXPECT_TRUE(
        api.WaitForPost("/invocation/req-" + std::to_string(kEvents) + "/response", &post, 30000));
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    process.Signal(SIGTERM);
    int status = 0;
    EXPECT_TRUE(process.WaitExit(3000, &status));
    return ms / (kEvents - 1);
  };
  double exec_ms = measure({EPHEMERA_ECHO_BINARY, "--stdio"}, EPHEMERA_SHIM_BINARY);
  double native_ms = measure({}, EPHEMERA_ECHO_BINARY);
  std::printf("[ measure ] per event, echo: exec mode %.3f ms, native mode %.3f ms\n", exec_ms,
              native_ms);
}

}  // namespace
}  // namespace ephemera::shim
