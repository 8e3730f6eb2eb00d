// shim/modes.cc: helpers shared by the exec and http modes (see modes.h).
#include "shim/modes.h"

#include <unistd.h>

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

}  // namespace ephemera::shim
