#include "runtime/cli/client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/base64.h"
#include "runtime/json/json.h"

namespace ephemera::cli {
namespace {

struct Reply {
  long status = 0;
  std::string body;
  std::string function_error;
  std::string server_timing;
  std::string log_result;
  std::string error_type;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  std::string value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
  if (name == "x-amz-function-error") r->function_error = value;
  if (name == "server-timing") r->server_timing = value;
  if (name == "x-amz-log-result") r->log_result = value;
  if (name == "x-amzn-errortype") r->error_type = value;
  return size * n;
}

// One request; false (with a message printed) if the daemon could not be reached.
bool Request(const std::string& method, const std::string& url, const std::string* body,
             const std::vector<std::string>& headers, Reply* reply) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, reply);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, reply);
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
  if (body != nullptr) {
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
  }
  CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    std::fprintf(stderr,
                 "ephemera: cannot reach the daemon at %s: %s (is `ephemera serve` running?)\n",
                 url.c_str(), curl_easy_strerror(rc));
    return false;
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply->status);
  return true;
}

void PrintServiceError(const Reply& r) {
  auto j = json::Parse(r.body);
  std::string message = j ? json::GetString(j.get(), "Message").value_or(r.body) : r.body;
  std::fprintf(stderr, "ephemera: %s (HTTP %ld): %s\n",
               r.error_type.empty() ? "error" : r.error_type.c_str(), r.status, message.c_str());
}

}  // namespace

int Invoke(const InvokeOptions& o) {
  Reply r;
  std::vector<std::string> headers;
  std::string url = o.endpoint;
  if (o.raw) {
    url += "/function/" + o.function;
  } else {
    url += "/2015-03-31/functions/" + o.function + "/invocations";
    if (o.event) headers.push_back("X-Amz-Invocation-Type: Event");
    if (o.tail) headers.push_back("X-Amz-Log-Type: Tail");
  }
  headers.push_back("Content-Type: application/octet-stream");
  if (!Request("POST", url, &o.payload, headers, &r)) return 2;
  if (r.status >= 300) {
    PrintServiceError(r);
    return 2;
  }
  if (o.timing && !r.server_timing.empty())
    std::fprintf(stderr, "Server-Timing: %s\n", r.server_timing.c_str());
  if (!r.log_result.empty()) {
    if (auto logs = Base64Decode(r.log_result)) std::fprintf(stderr, "%s", logs->c_str());
  }
  if (o.event) {
    std::fprintf(stderr, "accepted (HTTP %ld): the invocation runs in the background\n", r.status);
    return 0;
  }
  std::fwrite(r.body.data(), 1, r.body.size(), stdout);
  if (!r.body.empty() && r.body.back() != '\n' && isatty(1)) std::fputc('\n', stdout);
  if (!r.function_error.empty()) {
    std::fprintf(stderr, "ephemera: function error (%s)\n", r.function_error.c_str());
    return 1;
  }
  return 0;
}

int ListFunctions(const std::string& endpoint) {
  Reply r;
  if (!Request("GET", endpoint + "/2015-03-31/functions/?MaxItems=10000", nullptr, {}, &r))
    return 2;
  if (r.status != 200) {
    PrintServiceError(r);
    return 2;
  }
  auto j = json::Parse(r.body);
  const cJSON* fns = j ? cJSON_GetObjectItemCaseSensitive(j.get(), "Functions") : nullptr;
  if (!cJSON_IsArray(fns)) {
    std::fprintf(stderr, "ephemera: unexpected answer from the daemon: %s\n", r.body.c_str());
    return 2;
  }
  std::printf("%-20s %-32s %-12s %8s %8s\n", "NAME", "IMAGE", "MODE", "TIMEOUT", "MEMORY");
  const cJSON* fn = nullptr;
  cJSON_ArrayForEach(fn, fns) {
    std::string name = json::GetString(fn, "FunctionName").value_or("?");
    std::string image;
    std::string mode = "exec";
    // ListFunctions carries no image (as in AWS); GetFunction has it under Code.
    Reply g;
    if (Request("GET", endpoint + "/2015-03-31/functions/" + name, nullptr, {}, &g) &&
        g.status == 200) {
      if (auto gj = json::Parse(g.body)) {
        image = json::GetString(cJSON_GetObjectItemCaseSensitive(gj.get(), "Code"), "ImageUri")
                    .value_or("");
      }
    }
    if (const cJSON* env = cJSON_GetObjectItemCaseSensitive(fn, "Environment")) {
      if (const cJSON* vars = cJSON_GetObjectItemCaseSensitive(env, "Variables")) {
        mode = json::GetString(vars, "EPHEMERA_MODE").value_or(mode);
      }
    }
    std::printf("%-20s %-32s %-12s %7.0fs %5.0f MB\n", name.c_str(), image.c_str(), mode.c_str(),
                json::GetNumber(fn, "Timeout").value_or(0),
                json::GetNumber(fn, "MemorySize").value_or(0));
  }
  return 0;
}

}  // namespace ephemera::cli
