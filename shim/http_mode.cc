// shim/http_mode.cc: the http mode (see modes.h).
//
// StartService → WaitUntilListening → loop { next event → ForwardEvent → post } →
// StopService. The service's stdout and stderr go through a LogTee thread that copies
// them to the container log and keeps the last bytes for init-error messages. While the
// service handles an event the idle Runtime API connection is watched (a daemon that died
// ends the shim, exit 3), and the supervisor kills the service 1 s past the deadline.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "shim/apigw.h"
#include "shim/exec_runner.h"
#include "shim/json.h"
#include "shim/modes.h"
#include "shim/signals.h"
#include "shim/supervisor.h"

namespace ephemera::shim {
namespace {

constexpr size_t kLogTailBytes = 2048;
constexpr int kProbeIntervalMs = 5;
constexpr int kStopGraceMs = 2000;

long long NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);  // an early wake-up by a signal is fine: callers loop
}

// Copies the service's stdout/stderr to the shim's own and keeps their last bytes. The
// thread runs with every signal blocked, so SIGTERM and SIGCHLD interrupt the main
// thread's blocking calls, not this one. It ends at EOF on both pipes; it is detached
// because the shim may exit while the service still runs.
class LogTee {
 public:
  void Start(int out_fd, int err_fd) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this, out_fd, err_fd] { Run(out_fd, err_fd); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  std::string Tail() {
    std::lock_guard<std::mutex> lock(mutex_);
    return tail_.empty() ? std::string("(no output)") : tail_;
  }

 private:
  void Run(int out_fd, int err_fd) {
    int fds[2] = {out_fd, err_fd};
    int sinks[2] = {1, 2};
    char buf[16384];
    while (fds[0] >= 0 || fds[1] >= 0) {
      struct pollfd p[2];
      int n = 0;
      int index[2];
      for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0) continue;
        index[n] = i;
        p[n++] = {fds[i], POLLIN, 0};
      }
      if (poll(p, static_cast<nfds_t>(n), -1) < 0) continue;
      for (int k = 0; k < n; ++k) {
        if (p[k].revents == 0) continue;
        int i = index[k];
        ssize_t got = read(fds[i], buf, sizeof buf);
        if (got <= 0) {
          if (got < 0 && errno == EINTR) continue;
          close(fds[i]);
          fds[i] = -1;
          continue;
        }
        for (ssize_t off = 0; off < got;) {
          ssize_t w = write(sinks[i], buf + off, static_cast<size_t>(got - off));
          if (w <= 0) break;
          off += w;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        tail_.append(buf, static_cast<size_t>(got));
        if (tail_.size() > kLogTailBytes) tail_.erase(0, tail_.size() - kLogTailBytes);
      }
    }
  }

  std::mutex mutex_;
  std::string tail_;
};

class HttpMode {
 public:
  HttpMode(const ShimSetup& setup, const HttpModeConfig& config)
      : api_(setup.api),
        argv_(setup.argv),
        child_env_(setup.child_env),
        config_(config),
        command_(DescribeCommand(setup.argv)),
        service_("127.0.0.1", config.port) {}

  int Run() {
    if (!StartService()) return 1;
    int rc = WaitUntilListening();
    if (rc < 0) rc = ServeEvents();
    StopService();  // a no-op if the service already exited
    // Whatever the service left behind in its process group (a daemonised server, say)
    // goes too, so nothing outlives the shim even outside a container.
    kill(-group_, SIGKILL);
    return rc;
  }

 private:
  // Reports an init failure to the Runtime API and the log.
  void InitError(std::string_view type, const std::string& message) {
    ShimLog(message);
    Status st = api_->PostInitError(type, message);
    if (!st.ok()) ShimLog("http mode: cannot post the init error: " + st.message());
  }

  bool StartService() {
    Status runnable = CheckExecutable(argv_[0]);
    if (!runnable.ok()) {
      InitError("Runtime.InvalidEntrypoint", "http mode: " + runnable.message());
      return false;
    }
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    if (pipe2(err, O_CLOEXEC) != 0) return false;
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int exec_errno = 0;
    Status st = Spawn(argv_, child_env_, null_fd >= 0 ? null_fd : 0, out[1], err[1], true, &pid_,
                      &exec_errno);
    if (null_fd >= 0) close(null_fd);
    close(out[1]);
    close(err[1]);
    if (!st.ok()) {
      close(out[0]);
      close(err[0]);
      InitError("Runtime.InvalidEntrypoint", "http mode: " + st.message());
      return false;
    }
    group_ = pid_;
    SuperviseGroup(group_);
    tee_.Start(out[0], err[0]);
    return true;
  }

  // Returns -1 once the service accepts connections, else the shim's exit code.
  int WaitUntilListening() {
    long long started = NowMs();
    long long deadline = started + config_.init_timeout_ms;
    std::string where = "127.0.0.1:" + std::to_string(config_.port);
    while (true) {
      int status = 0;
      if (ReapChildren(pid_, &status)) {
        pid_ = -1;
        InitError("Runtime.ServiceExited",
                  "http mode: " + command_ + " " + DescribeWaitStatus(status) +
                      " before listening on " + where + "; last output: " + tee_.Tail());
        return 1;
      }
      if (TerminationRequested()) {
        StopService();
        return 0;
      }
      if (service_.Connect(0).ok()) return -1;  // keep the connection for the first event
      if (NowMs() >= deadline) {
        InitError("Runtime.ServiceNotReady",
                  "http mode: " + command_ + " did not accept connections on " + where +
                      " within " + std::to_string(config_.init_timeout_ms) +
                      " ms (EPHEMERA_INIT_TIMEOUT_MS); last output: " + tee_.Tail());
        StopService();
        return 1;
      }
      SleepMs(kProbeIntervalMs);
    }
  }

  int ServeEvents() {
    // A SIGCHLD while /next blocks may mean the service died: then stop polling for work
    // this environment can no longer do (the daemon sees the container exit).
    // (The mode object is never destroyed, so capturing `this` is safe.)
    api_->set_interrupt_check([this] {
      if (pid_ > 0 && ReapChildren(pid_, &service_exit_status_)) {
        pid_ = -1;
        service_died_ = true;
      }
      return service_died_;
    });
    int failures = 0;
    while (!TerminationRequested()) {
      Invocation invocation;
      Status st = api_->Next(&invocation);
      if (service_died_) {
        ShimLog("http mode: " + command_ + " " + DescribeWaitStatus(service_exit_status_) +
                " while waiting for an event; last output: " + tee_.Tail());
        return 1;
      }
      if (!st.ok()) {
        if (TerminationRequested()) break;
        if (NextFailed(api_, "http", st, &failures)) return 1;
        continue;
      }
      failures = 0;
      WatchDeadline(invocation.request_id, invocation.deadline_ms);
      bool service_alive = ForwardEvent(invocation);
      ForgetDeadline(invocation.request_id);
      int status = 0;
      if (!service_alive || ReapChildren(pid_, &status)) {
        if (service_alive) {
          ShimLog("http mode: " + command_ + " " + DescribeWaitStatus(status));
        }
        pid_ = -1;
        return 1;
      }
    }
    return 0;
  }

  // Sends one event to the service and posts the outcome. Returns false if the service
  // process has exited (the environment cannot serve more events).
  bool ForwardEvent(const Invocation& invocation) {
    JsonValue event;
    ApiGatewayFormat format = ApiGatewayFormat::kNone;
    size_t first = invocation.event.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && invocation.event[first] == '{' &&
        JsonValue::Parse(invocation.event, &event, nullptr)) {
      format = DetectApiGatewayFormat(event);
    }
    HttpRequest request;
    if (format != ApiGatewayFormat::kNone) {
      Status st = ApiGatewayEventToRequest(event, format, &request);
      if (!st.ok()) {
        Post(api_->PostError(invocation.request_id, "Runtime.InvalidEvent",
                             "http mode: " + st.message()));
        return true;
      }
    } else {
      request.method = "POST";
      request.target = config_.path;
      request.headers.emplace_back("Content-Type", invocation.content_type.empty()
                                                       ? "application/json"
                                                       : invocation.content_type);
      request.body = invocation.event;
    }
    request.headers.emplace_back("X-Amzn-RequestId", invocation.request_id);
    if (!invocation.trace_id.empty())
      request.headers.emplace_back("X-Amzn-Trace-Id", invocation.trace_id);

    HttpResponse response;
    service_.set_watch(api_->IdleWatch());
    Status st = service_.Send(request, &response);
    if (service_.watch_failed()) {
      ExitRuntimeApiGone(api_->endpoint().Describe(),
                         "its connection closed while the service handled an event and a new "
                         "one was refused");
    }
    if (!st.ok()) {
      int status = 0;
      if (pid_ > 0 && ReapChildren(pid_, &status)) {
        std::string message = "http mode: " + command_ + " " + DescribeWaitStatus(status) +
                              "; last output: " + tee_.Tail();
        ShimLog(message);
        Post(api_->PostError(invocation.request_id, "Runtime.ServiceExited", message));
        return false;
      }
      std::string message = "http mode: request to " + command_ + " failed: " + st.message();
      ShimLog(message);
      Post(api_->PostError(invocation.request_id, "Runtime.ServiceUnreachable", message));
      return true;
    }
    if (format != ApiGatewayFormat::kNone) {
      Post(api_->PostResponse(invocation.request_id,
                              HttpResponseToApiGatewayResult(response, format),
                              "application/json"));
    } else if (response.status >= 400) {
      std::string excerpt =
          response.body.size() > 1024 ? response.body.substr(0, 1024) + "..." : response.body;
      Post(api_->PostError(invocation.request_id, "Function.HttpStatus",
                           "http mode: POST " + config_.path + " answered " +
                               std::to_string(response.status) + ": " + excerpt));
    } else {
      const std::string* type = response.Header("Content-Type");
      Post(api_->PostResponse(invocation.request_id, std::move(response.body),
                              type != nullptr ? *type : "application/octet-stream"));
    }
    return true;
  }

  void Post(const Status& st) {
    if (st.ok()) return;
    ShimLog("http mode: cannot post a result: " + st.message());
    if (!api_->IsReachable())
      ExitRuntimeApiGone(api_->endpoint().Describe(), "posting a result failed");
  }

  // SIGTERM to the service's process group, SIGKILL after the grace period.
  void StopService() {
    if (pid_ <= 0) return;
    if (kill(-pid_, SIGTERM) != 0) kill(pid_, SIGTERM);
    long long deadline = NowMs() + kStopGraceMs;
    while (NowMs() < deadline) {
      if (ReapChildren(pid_, nullptr)) {
        pid_ = -1;
        return;
      }
      SleepMs(10);
    }
    if (kill(-pid_, SIGKILL) != 0) kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  RuntimeApiClient* api_;
  const std::vector<std::string>& argv_;
  const std::vector<std::string>& child_env_;
  HttpModeConfig config_;
  std::string command_;
  HttpClient service_;
  LogTee tee_;
  pid_t pid_ = -1;             // the service process, -1 once reaped
  pid_t group_ = -1;           // its process group (it leads one), still valid after it is reaped
  bool service_died_ = false;  // noticed while GET /next was blocking
  int service_exit_status_ = 0;
};

}  // namespace

int RunHttpMode(const ShimSetup& setup, const HttpModeConfig& config) {
  // The LogTee thread outlives Run() when the shim exits with the service still running,
  // so the mode object is never destroyed; a global keeps it reachable (and LeakSanitizer
  // quiet).
  static HttpMode* volatile mode = nullptr;  // volatile: the store must not be elided
  mode = new HttpMode(setup, config);
  return mode->Run();
}

}  // namespace ephemera::shim
