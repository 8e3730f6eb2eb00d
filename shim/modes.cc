// shim/modes.cc: helpers shared by the modes (see modes.h).
#include "shim/modes.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "shim/log_mark.h"
#include "shim/supervisor.h"

namespace ephemera::shim {

void ShimLog(std::string_view line) {
  // One line per message, even when it quotes a function's multi-line output.
  std::string text = "ephemera-shim: ";
  for (char c : line) {
    if (c == '\n') {
      text.append("\\n");
    } else if (c != '\r') {
      text.push_back(c);
    }
  }
  text.push_back('\n');
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(2, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::string DescribeCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out.push_back(' ');
    bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`;&|<>*?()") == std::string::npos;
    if (plain) {
      out.append(arg);
    } else {
      out.push_back('\'');
      for (char c : arg) {
        if (c == '\'')
          out.append("'\\''");
        else
          out.push_back(c);
      }
      out.push_back('\'');
    }
    if (out.size() > 200) {
      out.resize(200);
      out.append("...");
      break;
    }
  }
  return out;
}

std::vector<std::string> InvocationEnvironment(const Invocation& invocation) {
  std::vector<std::string> env;
  env.push_back("AWS_LAMBDA_REQUEST_ID=" + invocation.request_id);
  if (!invocation.trace_id.empty()) env.push_back("_X_AMZN_TRACE_ID=" + invocation.trace_id);
  if (invocation.deadline_ms > 0) {
    env.push_back("AWS_LAMBDA_DEADLINE_MS=" + std::to_string(invocation.deadline_ms));
  }
  if (!invocation.function_arn.empty()) {
    env.push_back("AWS_LAMBDA_INVOKED_FUNCTION_ARN=" + invocation.function_arn);
  }
  return env;
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

namespace {

constexpr std::string_view kRuntimePrefix = "/2018-06-01/runtime/";
constexpr std::string_view kInvocationPrefix = "/2018-06-01/runtime/invocation/";
constexpr std::string_view kNextTarget = "/2018-06-01/runtime/invocation/next";
constexpr int kMaxNextFailures = 3;

// The request id of POST /2018-06-01/runtime/invocation/{id}/response (or /error), else "".
std::string_view AnsweredRequestId(const WireHead& request) {
  std::string_view target = request.target;
  if (request.method != "POST" || target.substr(0, kInvocationPrefix.size()) != kInvocationPrefix) {
    return {};
  }
  target.remove_prefix(kInvocationPrefix.size());
  size_t slash = target.find('/');
  if (slash == std::string_view::npos) return {};
  std::string_view rest = target.substr(slash);
  if (rest != "/response" && rest != "/error") return {};
  return target.substr(0, slash);
}

}  // namespace

AutoDecision::AutoDecision() {
  if (pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
}

void AutoDecision::Arm(std::string next_response) {
  std::lock_guard<std::mutex> lock(mutex_);
  next_response_ = std::move(next_response);
  armed_ = true;
}

bool AutoDecision::OnRuntimeRequest(const WireHead& request, std::string* response) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return false;
  if (verdict_ == Verdict::kUndecided) {
    verdict_ = Verdict::kRuntimeClient;
    char byte = 1;
    ssize_t ignored = write(pipe_[1], &byte, 1);
    (void)ignored;
  }
  if (verdict_ != Verdict::kRuntimeClient || handed_out_) return false;
  if (request.method != "GET" || request.target != kNextTarget) return false;
  handed_out_ = true;
  response->swap(next_response_);
  return true;
}

bool AutoDecision::SettleExec() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (verdict_ == Verdict::kUndecided) verdict_ = Verdict::kExec;
  return verdict_ == Verdict::kExec;
}

AutoDecision::Verdict AutoDecision::verdict() {
  std::lock_guard<std::mutex> lock(mutex_);
  return verdict_;
}

std::string ReplayableResponse(const HttpResponse& response) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " OK\r\n";
  for (const auto& [name, value] : response.headers) {
    if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
        EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Keep-Alive")) {
      continue;  // the body is re-framed below; the connection is the proxy's own
    }
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n\r\n");
  out.append(response.body);
  return out;
}

ProxyHooks ShimProxyHooks(const Endpoint& upstream, AutoDecision* decision) {
  ProxyHooks hooks;
  hooks.on_request = [decision](const WireHead& request, std::string* local_response) {
    if (request.target.compare(0, kRuntimePrefix.size(), kRuntimePrefix) != 0) return false;
    std::string_view answered = AnsweredRequestId(request);
    if (!answered.empty()) {
      ForgetDeadline(answered);
      // Before the result goes upstream: the function's output so far is ahead of it.
      WriteLogMarkInOrder(answered);
    }
    return decision != nullptr && decision->OnRuntimeRequest(request, local_response);
  };
  hooks.on_response = [](const WireHead& request, const WireHead& response) {
    if (request.method != "GET" || request.target != kNextTarget || response.status != 200) return;
    const std::string* id = response.Header("Lambda-Runtime-Aws-Request-Id");
    if (id != nullptr && response.Header(kLogMarkAskHeader) != nullptr) ExpectLogMark(*id);
    const std::string* deadline = response.Header("Lambda-Runtime-Deadline-Ms");
    if (id != nullptr && deadline != nullptr) {
      WatchDeadline(*id, strtoll(deadline->c_str(), nullptr, 10));
    }
  };
  std::string where = upstream.Describe();
  hooks.on_upstream_gone = [where](const std::string& why) { ExitRuntimeApiGone(where, why); };
  return hooks;
}

bool NextFailed(RuntimeApiClient* api, std::string_view mode, const Status& status, int* failures) {
  ShimLog(std::string(mode) + " mode: " + status.message());
  if (!api->IsReachable()) {
    ExitRuntimeApiGone(api->endpoint().Describe(),
                       "GET /next failed and a new connection was refused");
  }
  return ++*failures >= kMaxNextFailures;
}

void ReportInitError(RuntimeApiClient* api, std::string_view mode, std::string_view type,
                     const std::string& message) {
  ShimLog(message);
  Status st = api->PostInitError(type, message);
  if (!st.ok()) ShimLog(std::string(mode) + " mode: cannot post the init error: " + st.message());
}

}  // namespace ephemera::shim
