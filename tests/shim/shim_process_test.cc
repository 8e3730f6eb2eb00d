// tests/shim/shim_process_test.cc: the real ephemera-shim binary, run as a child process
// against a fake Runtime API in this test (no docker needed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include "shim/http_client.h"
#include "shim/json.h"
#include "shim/log_mark.h"
#include "tests/shim/fake_runtime_api.h"
#include "tests/shim/unix_echo_server.h"

extern char** environ;

namespace ephemera::shim {
namespace {

using testing::FakeHttpServer;
using testing::FakeReply;
using testing::FakeRequest;
using testing::FakeRuntimeApi;
using testing::kFunctionArn;
using testing::kInitError;
using testing::kNext;
using testing::UnixEchoServer;
using Clock = std::chrono::steady_clock;

// The shim as a child process with its stderr in a temporary file.
class ShimProcess {
 public:
  // Runs `binary` (the shim unless given) with `command` as its arguments, the test's
  // environment minus EPHEMERA_* and AWS_LAMBDA_RUNTIME_API, then AWS_LAMBDA_RUNTIME_API=
  // `endpoint` (unless empty) and `extra_env`.
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
    if (!endpoint.empty()) env.push_back("AWS_LAMBDA_RUNTIME_API=" + endpoint);
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
  pid_t pid() const { return pid_; }

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
  auto requests = api.server().requests();
  EXPECT_EQ(requests[2].target, kNext);
  for (const auto& r : requests) EXPECT_EQ(r.connection, 1);  // one keep-alive connection
  shim.Signal(SIGTERM);
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << shim.Stderr();
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

// Asked for it, the shim writes the invocation's log mark on stderr (and stdout) after the
// function's output and before the result; GET /next offers marks. Unasked, no mark.
TEST(ShimProcess, ExecModeWritesTheLogMarkAfterTheOutputWhenAsked) {
  FakeRuntimeApi::Options asked;
  asked.ask_log_mark = true;
  FakeRuntimeApi api({"{}", "{}"}, asked);
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "echo err-line >&2; cat"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  std::string log = shim.Stderr();
  size_t line = log.find("err-line\n");
  size_t mark1 = log.find(ephemera::shim::LogMark("req-1"));
  size_t mark2 = log.find(ephemera::shim::LogMark("req-2"));
  ASSERT_NE(line, std::string::npos) << log;
  ASSERT_NE(mark1, std::string::npos) << log;
  ASSERT_NE(mark2, std::string::npos) << log;
  EXPECT_LT(line, mark1);
  EXPECT_LT(mark1, log.find("err-line\n", line + 1)) << "the second run's line follows mark 1";
  EXPECT_LT(log.find("err-line\n", line + 1), mark2);
  for (const auto& r : api.server().requests()) {
    if (r.target == kNext) {
      EXPECT_EQ(r.Header("Ephemera-Log-Marks"), "1");
    }
  }

  FakeRuntimeApi unasked({"{}"});
  ShimProcess plain(unasked.endpoint(), {"/bin/sh", "-c", "echo err-line >&2; cat"});
  ASSERT_TRUE(unasked.WaitForPost("/invocation/req-1/response", &post)) << plain.Stderr();
  EXPECT_EQ(plain.Stderr().find(ephemera::shim::kLogMarkPrefix), std::string::npos)
      << plain.Stderr();
}

// A Runtime API client of its own posts through the proxy, which writes the mark for it
// (the first event's ask was seen by the shim's own GET /next, the second's by the proxy),
// through the relay that copies the client's output (log_mark.h WriteLogMarkInOrder).
TEST(ShimProcess, TheProxyWritesTheLogMarkOfAClientThatPostsThroughIt) {
  FakeRuntimeApi::Options asked;
  asked.ask_log_mark = true;
  FakeRuntimeApi api({"{\"a\":1}", "{\"b\":2}"}, asked);
  ShimProcess shim(api.endpoint(), {EPHEMERA_LAMBDA_CPP_BINARY}, {"EPHEMERA_MODE=auto"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  std::string log = shim.Stderr();
  // In auto mode the shim copies the client's stderr from a pipe; each mark still comes
  // after the line the client wrote before its result, and before the next one's.
  size_t line1 = log.find("lambda-cpp: invocation req-1");
  size_t mark1 = log.find(ephemera::shim::LogMark("req-1"));
  size_t line2 = log.find("lambda-cpp: invocation req-2");
  size_t mark2 = log.find(ephemera::shim::LogMark("req-2"));
  ASSERT_NE(line1, std::string::npos) << log;
  ASSERT_NE(mark1, std::string::npos) << log;
  ASSERT_NE(line2, std::string::npos) << log;
  ASSERT_NE(mark2, std::string::npos) << log;
  EXPECT_LT(line1, mark1) << log;
  EXPECT_LT(mark1, line2) << log;
  EXPECT_LT(line2, mark2) << log;
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

std::string TempPath(const std::string& name) {
  return "/tmp/ephemera-shim-test-" + std::to_string(getpid()) + "-" + name;
}

// True once `pid` has exited (gone, or a zombie nobody reaped yet); bounded wait.
bool WaitProcessDead(pid_t pid, int timeout_ms = 5000) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t paren = text.rfind(')');
    if (text.empty() || (paren != std::string::npos && paren + 2 < text.size() &&
                         (text[paren + 2] == 'Z' || text[paren + 2] == 'X'))) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Waits for `path` to hold a pid written by a test command; -1 on timeout.
pid_t WaitForPidFile(const std::string& path, int timeout_ms = 10000) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    std::ifstream in(path);
    long pid = 0;
    if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

TEST(ShimProcess, ExecModeReachesTheRuntimeApiOverAUnixSocket) {
  FakeRuntimeApi::Options options;
  options.unix_path = TempPath("exec.sock");
  FakeRuntimeApi api({"over a unix socket", "twice"}, options);
  ShimProcess shim("", {"/bin/cat"}, {"EPHEMERA_RUNTIME_SOCKET=" + options.unix_path});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "over a unix socket");
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "twice");
  for (const auto& r : api.server().requests()) {
    EXPECT_EQ(r.connection, 1);  // keep-alive over the socket too
    EXPECT_EQ(r.Header("Host"), "localhost");
  }
}

TEST(ShimProcess, PassthroughRelaysANativeClientAndAConcurrentInvokeThroughTheProxy) {
  FakeRuntimeApi::Options options;
  options.unix_path = TempPath("passthrough.sock");
  FakeRuntimeApi api({"one", "two"}, options);
  uint16_t proxy_port = FreePort();
  std::string proxy = "127.0.0.1:" + std::to_string(proxy_port);
  ShimProcess shim(proxy, {EPHEMERA_ECHO_BINARY},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_PROXY_LISTEN=" + proxy,
                    "EPHEMERA_RUNTIME_SOCKET=" + options.unix_path});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "one");
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "two");
  ASSERT_TRUE(api.server().WaitForRequests(5));  // echo's third /next is now parked

  // A function's own Invoke call, while the runtime's long poll is open.
  HttpClient function("127.0.0.1", proxy_port);
  HttpRequest invoke;
  invoke.method = "POST";
  invoke.target = "/2015-03-31/functions/other/invocations";
  invoke.body = "{\"call\":1}";
  HttpResponse answer;
  Status st = function.Send(invoke, &answer);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(answer.status, 202);
  EXPECT_EQ(answer.body, "{\"status\":\"OK\"}");
  ASSERT_TRUE(api.WaitForPost("/2015-03-31/functions/other/invocations", &post));
  EXPECT_EQ(post.body, "{\"call\":1}");

  shim.Signal(SIGTERM);  // forwarded to echo, whose Serve() returns 0
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(4000, &status)) << shim.Stderr();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << shim.Stderr();
}

TEST(ShimProcess, PassthroughExitsWithTheCommandsStatusAndHidesTheShimsWiring) {
  FakeRuntimeApi api({});
  std::string proxy = "127.0.0.1:" + std::to_string(FreePort());
  ShimProcess shim(proxy,
                   {"/bin/sh", "-c",
                    "echo \"api=$AWS_LAMBDA_RUNTIME_API socket=${EPHEMERA_RUNTIME_API-unset} "
                    "listen=${EPHEMERA_PROXY_LISTEN-unset}\" >&2; exit 7"},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_PROXY_LISTEN=" + proxy,
                    "EPHEMERA_RUNTIME_API=" + api.endpoint()});
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(4000, &status)) << shim.Stderr();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << status << "\n" << shim.Stderr();
  EXPECT_NE(shim.Stderr().find("api=" + proxy + " socket=unset listen=unset"), std::string::npos)
      << shim.Stderr();
  EXPECT_EQ(api.server().requests().size(), 0u);  // the shim posts nothing on its behalf
}

TEST(ShimProcess, ProxyPointingAtItselfIsAConfigurationError) {
  std::string proxy = "127.0.0.1:" + std::to_string(FreePort());
  ShimProcess shim(proxy, {"/bin/cat"},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_PROXY_LISTEN=" + proxy});
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status << "\n" << shim.Stderr();
  EXPECT_NE(shim.Stderr().find("is the proxy's own address"), std::string::npos) << shim.Stderr();
}

TEST(ShimProcess, AutoModeRunsAPlainCommandAsExecForEveryEvent) {
  FakeRuntimeApi api({"abc", "def"});
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "tr a-z A-Z"}, {"EPHEMERA_MODE=auto"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "ABC");
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "DEF");
  std::string log = shim.Stderr();
  std::string line = "ephemera-shim: auto mode: /bin/sh -c 'tr a-z A-Z' runs as exec";
  size_t at = log.find(line);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;  // logged once
  EXPECT_EQ(log.find("Runtime API client"), std::string::npos) << log;
}

TEST(ShimProcess, AutoModeHandsTheFetchedEventToACurlRuntimeClientThenPassesThrough) {
  FakeRuntimeApi api({"{\"a\":1}", "{\"b\":2}", "{\"exit\":5}"});
  ShimProcess shim(api.endpoint(), {EPHEMERA_LAMBDA_CPP_BINARY}, {"EPHEMERA_MODE=auto"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  JsonValue first = ParseJson(post.body);
  EXPECT_EQ(*first.FindString("payload"), "{\"a\":1}");
  EXPECT_EQ(*first.FindString("requestId"), "req-1");
  EXPECT_EQ(*first.FindString("traceId"), "Root=1-test");
  EXPECT_EQ(*first.FindString("functionArn"), kFunctionArn);
  EXPECT_EQ(first.Find("deadlineMs")->text(), std::to_string(testing::kFarDeadlineMs));
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/response", &post)) << shim.Stderr();
  EXPECT_EQ(*ParseJson(post.body).FindString("payload"), "{\"b\":2}");
  // The third event makes the runtime exit 5: the environment ends with its status.
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(5000, &status)) << shim.Stderr();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << status << "\n" << shim.Stderr();
  EXPECT_EQ(api.served(), 3);  // the shim's own /next plus two of the runtime's
  int nexts = 0;
  for (const auto& r : api.server().requests()) nexts += r.target == kNext;
  EXPECT_EQ(nexts, 3);
  std::string log = shim.Stderr();
  std::string line = "ephemera-shim: auto mode: " + std::string(EPHEMERA_LAMBDA_CPP_BINARY) +
                     " is a Runtime API client";
  size_t at = log.find(line);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;
  EXPECT_EQ(log.find("runs as exec"), std::string::npos) << log;
}

TEST(ShimProcess, AutoModeClientCallsAnotherFunctionThroughTheProxy) {
  FakeRuntimeApi api({"{\"ask\":\"other\"}"});
  ShimProcess shim(api.endpoint(), {EPHEMERA_PROBE_BINARY, "invoke"}, {"EPHEMERA_MODE=auto"});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/2015-03-31/functions/other/invocations", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "{\"ask\":\"other\"}");
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "{\"status\":\"OK\"}");  // the Invoke answer, relayed
}

TEST(ShimProcess, ExecHandlerStillRunningOneSecondPastItsDeadlineIsKilled) {
  FakeRuntimeApi::Options options;
  options.deadline_after_ms = 1000;
  FakeRuntimeApi api({"{}"}, options);
  std::string pid_file = TempPath("deadline.pid");
  unlink(pid_file.c_str());
  ShimProcess shim(api.endpoint(), {"/bin/sh", "-c", "echo $$ > " + pid_file + "; exec sleep 30"});
  ASSERT_TRUE(api.server().WaitForRequests(1));
  auto handed_out = Clock::now();
  pid_t child = WaitForPidFile(pid_file);
  ASSERT_GT(child, 0) << shim.Stderr();
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(5000, &status)) << shim.Stderr();
  auto took = Clock::now() - handed_out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 4) << status << "\n" << shim.Stderr();
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
  EXPECT_TRUE(WaitProcessDead(child));
  EXPECT_NE(shim.Stderr().find("exec mode: request req-1 still running"), std::string::npos)
      << shim.Stderr();
  unlink(pid_file.c_str());
}

TEST(ShimProcess, PassthroughInvocationStillOpenOneSecondPastItsDeadlineIsKilled) {
  FakeRuntimeApi::Options options;
  options.deadline_after_ms = 1000;
  FakeRuntimeApi api({"{}"}, options);
  ShimProcess shim("", {EPHEMERA_PROBE_BINARY, "hang"},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_RUNTIME_API=" + api.endpoint()});
  ASSERT_TRUE(api.server().WaitForRequests(1)) << shim.Stderr();
  auto handed_out = Clock::now();
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(5000, &status)) << shim.Stderr();
  auto took = Clock::now() - handed_out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 4) << status << "\n" << shim.Stderr();
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
  EXPECT_NE(shim.Stderr().find("probe: got req-1"), std::string::npos) << shim.Stderr();
}

TEST(ShimProcess, PassthroughForgetsTheDeadlineOfEveryAnsweredInvocation) {
  // Each event is answered 500 ms after its /next, within its own kill time (deadline 300 ms
  // + 1 s), but all four take 2 s: the shim survives only if each answer ends its deadline.
  FakeRuntimeApi::Options options;
  options.deadline_after_ms = 300;
  FakeRuntimeApi api({"e1", "e2", "e3", "e4"}, options);
  ShimProcess shim("", {EPHEMERA_PROBE_BINARY, "slow"},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_RUNTIME_API=" + api.endpoint()});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-4/response", &post)) << shim.Stderr();
  EXPECT_EQ(post.body, "e4");
  ASSERT_TRUE(api.server().WaitForRequests(9));  // the fifth /next: the probe is still alive
  int status = 0;
  EXPECT_EQ(waitpid(shim.pid(), &status, WNOHANG), 0) << shim.Stderr();  // and so is the shim
  EXPECT_EQ(shim.Stderr().find("past its deadline"), std::string::npos) << shim.Stderr();
}

// A "web service" that accepts one connection (the shim's readiness probe, which the shim
// keeps for the first event), prints what it receives to stderr, and never answers. Its
// stdin stays open: at EOF on stdin nc would half-close the connection.
std::vector<std::string> SilentService(uint16_t port) {
  return {"/bin/busybox", "sh", "-c",
          "sleep 60 | /bin/busybox nc -l -p " + std::to_string(port) + " >&2"};
}

TEST(ShimProcess, HttpModeServiceStillHandlingOneSecondPastTheDeadlineIsKilled) {
  if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
  FakeRuntimeApi::Options options;
  options.deadline_after_ms = 1000;
  FakeRuntimeApi api({"{\"raw\":1}"}, options);
  uint16_t port = FreePort();
  ShimProcess shim(api.endpoint(), SilentService(port),
                   {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(port)});
  ASSERT_TRUE(api.server().WaitForRequests(1)) << shim.Stderr();
  auto handed_out = Clock::now();
  ASSERT_TRUE(shim.WaitForStderr("{\"raw\":1}")) << shim.Stderr();  // the service has it
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(5000, &status)) << shim.Stderr();
  auto took = Clock::now() - handed_out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 4) << status << "\n" << shim.Stderr();
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
  EXPECT_NE(shim.Stderr().find("http mode: request req-1 still running"), std::string::npos)
      << shim.Stderr();
}

TEST(ShimProcess, HttpModeRuntimeApiGoneWhileTheServiceHandlesAnEventExits3) {
  if (access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{"{\"raw\":1}"});
  uint16_t port = FreePort();
  ShimProcess shim(api->endpoint(), SilentService(port),
                   {"EPHEMERA_MODE=http", "EPHEMERA_HTTP_PORT=" + std::to_string(port)});
  // The service has the event (nc printed the request the shim forwarded to it).
  ASSERT_TRUE(shim.WaitForStderr("{\"raw\":1}")) << shim.Stderr();
  auto killed = Clock::now();
  api.reset();
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status)) << shim.Stderr();
  EXPECT_LT(Clock::now() - killed, std::chrono::milliseconds(1000));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status << "\n" << shim.Stderr();
  EXPECT_NE(shim.Stderr().find("while the service handled an event"), std::string::npos)
      << shim.Stderr();
}

TEST(ShimProcess, RuntimeApiGoneWhileTheHandlerRunsKillsItAndExits3) {
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{"{}"});
  std::string pid_file = TempPath("gone.pid");
  unlink(pid_file.c_str());
  ShimProcess shim(api->endpoint(), {"/bin/sh", "-c", "echo $$ > " + pid_file + "; exec sleep 30"});
  pid_t child = WaitForPidFile(pid_file);
  ASSERT_GT(child, 0) << shim.Stderr();
  auto killed = Clock::now();
  api.reset();  // the daemon is kill -9ed mid-handler
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status)) << shim.Stderr();
  EXPECT_LT(Clock::now() - killed, std::chrono::milliseconds(1000));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status << "\n" << shim.Stderr();
  EXPECT_TRUE(WaitProcessDead(child));
  EXPECT_NE(shim.Stderr().find("is gone"), std::string::npos) << shim.Stderr();
  unlink(pid_file.c_str());
}

TEST(ShimProcess, RuntimeApiGoneWhileWaitingOnNextExits3) {
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{});
  ShimProcess shim(api->endpoint(), {"/bin/cat"});
  ASSERT_TRUE(api->server().WaitForRequests(1));  // parked in GET /next
  auto killed = Clock::now();
  api.reset();
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status)) << shim.Stderr();
  EXPECT_LT(Clock::now() - killed, std::chrono::milliseconds(1000));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status << "\n" << shim.Stderr();
}

TEST(ShimProcess, RuntimeApiGoneUnderAProxiedLongPollKillsThePassthroughCommand) {
  FakeRuntimeApi::Options options;
  options.unix_path = TempPath("gone.sock");
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{}, options);
  ShimProcess shim("", {EPHEMERA_ECHO_BINARY},
                   {"EPHEMERA_MODE=passthrough", "EPHEMERA_RUNTIME_SOCKET=" + options.unix_path});
  ASSERT_TRUE(api->server().WaitForRequests(1)) << shim.Stderr();  // echo's /next, proxied
  auto killed = Clock::now();
  api.reset();
  int status = 0;
  ASSERT_TRUE(shim.WaitExit(3000, &status)) << shim.Stderr();
  EXPECT_LT(Clock::now() - killed, std::chrono::milliseconds(1000));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status << "\n" << shim.Stderr();
  EXPECT_NE(shim.Stderr().find("passthrough mode: the Runtime API at unix:"), std::string::npos)
      << shim.Stderr();
}

TEST(ShimProcess, ExecChildSigkilledWithAnOomKillCountedPostsRuntimeOutOfMemory) {
  std::string dir = TempPath("cgroup");
  mkdir(dir.c_str(), 0700);
  for (const char* name : {"memory.events", "memory.oom_control"}) {
    std::ofstream(dir + "/" + std::string(name)) << "";
  }
  unlink((dir + "/memory.events").c_str());  // cgroup v1 layout: only memory.oom_control
  std::ofstream(dir + "/memory.oom_control") << "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n";
  FakeRuntimeApi api({"oom", "plain"});
  // Event "oom" bumps the counter, as the kernel would, before dying of SIGKILL; event
  // "plain" dies of SIGKILL without one.
  ShimProcess shim(api.endpoint(),
                   {"/bin/sh", "-c",
                    "read e; if [ \"$e\" = oom ]; then printf 'oom_kill_disable 0\\nunder_oom "
                    "0\\noom_kill 5\\n' > \"$EPHEMERA_CGROUP_MEMORY_DIR/memory.oom_control\"; fi; "
                    "kill -9 $$"},
                   {"EPHEMERA_CGROUP_MEMORY_DIR=" + dir});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/error", &post)) << shim.Stderr();
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Runtime.OutOfMemory");
  JsonValue body = ParseJson(post.body);
  EXPECT_EQ(*body.FindString("errorType"), "Runtime.OutOfMemory");
  EXPECT_EQ(*body.FindString("errorMessage"),
            "RequestId: req-1 Error: Runtime exited with error: signal: killed");
  ASSERT_TRUE(api.WaitForPost("/invocation/req-2/error", &post)) << shim.Stderr();
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Function.Signal");
  unlink((dir + "/memory.oom_control").c_str());
  rmdir(dir.c_str());
}

TEST(ShimProcess, OomIsReadFromCgroupV2MemoryEvents) {
  std::string dir = TempPath("cgroup2");
  mkdir(dir.c_str(), 0700);
  std::ofstream(dir + "/memory.events") << "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n";
  FakeRuntimeApi api({"x"});
  ShimProcess shim(api.endpoint(),
                   {"/bin/sh", "-c",
                    "printf 'low 0\\nhigh 0\\nmax 9\\noom 2\\noom_kill 2\\n' > "
                    "\"$EPHEMERA_CGROUP_MEMORY_DIR/memory.events\"; kill -9 $$"},
                   {"EPHEMERA_CGROUP_MEMORY_DIR=" + dir});
  FakeRequest post;
  ASSERT_TRUE(api.WaitForPost("/invocation/req-1/error", &post)) << shim.Stderr();
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Runtime.OutOfMemory");
  unlink((dir + "/memory.events").c_str());
  rmdir(dir.c_str());
}

TEST(ShimProcess, ForwardsAContainerPortToAHostUnixSocket) {
  UnixEchoServer echo(TempPath("fwd.sock"));
  FakeRuntimeApi api({});
  uint16_t port = FreePort();
  ShimProcess shim(api.endpoint(), {"/bin/cat"},
                   {"EPHEMERA_FORWARD=" + std::to_string(port) + "=" + echo.path()});
  ASSERT_TRUE(api.server().WaitForRequests(1)) << shim.Stderr();  // forwards listen before /next
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(send(fd, "PING\r\n", 6, 0), 6);
  shutdown(fd, SHUT_WR);
  std::string back;
  char buf[64];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) back.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(back, "PING\r\n");
}

// Spawns the shim with `args` and no environment at all.
pid_t SpawnBare(const std::vector<std::string>& args) {
  std::vector<std::string> all = {EPHEMERA_SHIM_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp), 0);
  return pid;
}

// True once /proc/<pid>/status shows handlers for SIGTERM and SIGINT, which --hold
// installs after blocking them for sigwait() (SigBlk itself reads 0 during the wait: the
// kernel unblocks the waited-for signals meanwhile).
bool WaitUntilHolding(pid_t pid, int timeout_ms = 5000) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("SigCgt:", 0) != 0) continue;
      unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      unsigned long long want = (1ULL << (SIGTERM - 1)) | (1ULL << (SIGINT - 1));
      if ((mask & want) == want) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(ShimProcess, HoldWaitsWithoutAnyEnvironmentUntilSigtermOrSigint) {
  for (int signo : {SIGTERM, SIGINT}) {
    pid_t pid = SpawnBare({"--hold"});
    ASSERT_GT(pid, 0);
    if (!WaitUntilHolding(pid)) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      FAIL() << "--hold never got ready";
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0);  // still there, asking for nothing
    kill(pid, signo);
    auto deadline = Clock::now() + std::chrono::seconds(3);
    pid_t r = 0;
    while (r == 0 && Clock::now() < deadline) {
      r = waitpid(pid, &status, WNOHANG);
      if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(r, pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
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
