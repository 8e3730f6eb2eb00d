// functions/lambda-cpp: a function built the way images for AWS Lambda are built:
// it carries its own Runtime API client (libcurl, one keep-alive connection, no
// timeout on the long-polling /next), so ephemera runs it in passthrough mode,
// with no shim. It answers with what it was told about the invocation, which
// makes it a probe of the /next headers:
//   {"payload":"<the event as a string>","requestId":..,"functionArn":..,
//    "deadlineMs":..,"traceId":..,"clientContext":..,"functionName":..}
// An event {"fail":"why"} is answered through /error (errorType Function.Requested);
// an event {"exit":N} makes the runtime exit with status N without answering.
#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Response {
  long status = 0;
  std::string body;
  std::string request_id, deadline_ms, function_arn, trace_id, client_context;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Response*>(user)->body.append(data, size * n);
  return size * n;
}

// Header names are matched case-insensitively, values trimmed.
size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string value = line.substr(colon + 1);
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
  if (name == "lambda-runtime-aws-request-id") r->request_id = value;
  if (name == "lambda-runtime-deadline-ms") r->deadline_ms = value;
  if (name == "lambda-runtime-invoked-function-arn") r->function_arn = value;
  if (name == "lambda-runtime-trace-id") r->trace_id = value;
  if (name == "lambda-runtime-client-context") r->client_context = value;
  return size * n;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The value of a top-level "key": in a small flat JSON object, or "" (enough for
// this probe; a real function would use a JSON library).
std::string Field(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return "";
  at = json.find(':', at);
  if (at == std::string::npos) return "";
  ++at;
  while (at < json.size() && json[at] == ' ') ++at;
  if (at < json.size() && json[at] == '"') {
    size_t end = json.find('"', at + 1);
    return end == std::string::npos ? "" : json.substr(at + 1, end - at - 1);
  }
  size_t end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

class RuntimeClient {
 public:
  explicit RuntimeClient(const std::string& api) : base_("http://" + api + "/2018-06-01/runtime/") {
    curl_ = curl_easy_init();
  }
  ~RuntimeClient() { curl_easy_cleanup(curl_); }

  bool Next(Response* r) { return Perform("GET", "invocation/next", nullptr, "", r); }
  bool Post(const std::string& path, const std::string& body, const std::string& error_type) {
    Response r;
    return Perform("POST", path, &body, error_type, &r) && r.status / 100 == 2;
  }

 private:
  bool Perform(const char* method, const std::string& path, const std::string* body,
               const std::string& error_type, Response* r) {
    curl_easy_reset(curl_);
    curl_slist* headers = curl_slist_append(nullptr, "Expect:");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!error_type.empty()) {
      headers =
          curl_slist_append(headers, ("Lambda-Runtime-Function-Error-Type: " + error_type).c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_URL, (base_ + path).c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 0L);  // /next blocks until there is an event
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 1L);
    curl_easy_setopt(curl_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROXY, "");
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, r);
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      std::fprintf(stderr, "lambda-cpp: %s %s: %s\n", method, path.c_str(), curl_easy_strerror(rc));
      return false;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r->status);
    return true;
  }

  std::string base_;
  CURL* curl_;
};

}  // namespace

int main() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (api == nullptr || *api == '\0') {
    std::fprintf(stderr,
                 "lambda-cpp: AWS_LAMBDA_RUNTIME_API is not set; run me under a Lambda runtime\n");
    return 1;
  }
  const char* name = std::getenv("AWS_LAMBDA_FUNCTION_NAME");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  RuntimeClient client(api);
  int failures = 0;
  while (failures < 3) {
    Response event;
    if (!client.Next(&event) || event.status != 200 || event.request_id.empty()) {
      ++failures;  // like aws-lambda-cpp: up to 3 failed /next calls in a row
      continue;
    }
    failures = 0;
    std::fprintf(stderr, "lambda-cpp: invocation %s (%zu bytes)\n", event.request_id.c_str(),
                 event.body.size());
    std::string exit_code = Field(event.body, "exit");
    if (!exit_code.empty()) return std::atoi(exit_code.c_str());
    std::string fail = Field(event.body, "fail");
    const std::string id_path = "invocation/" + event.request_id;
    if (!fail.empty()) {
      std::string error = "{\"errorMessage\":" + Quote(fail) +
                          ",\"errorType\":\"Function.Requested\",\"stackTrace\":[]}";
      if (!client.Post(id_path + "/error", error, "Function.Requested")) return 0;
      continue;
    }
    std::string answer =
        "{\"payload\":" + Quote(event.body) + ",\"requestId\":" + Quote(event.request_id) +
        ",\"functionArn\":" + Quote(event.function_arn) +
        ",\"deadlineMs\":" + (event.deadline_ms.empty() ? "0" : event.deadline_ms) +
        ",\"traceId\":" + Quote(event.trace_id) +
        ",\"clientContext\":" + Quote(event.client_context) +
        ",\"functionName\":" + Quote(name != nullptr ? name : "") + "}";
    // A failed post ends the runtime, as stock clients do (Lambda then reports ExitError).
    if (!client.Post(id_path + "/response", answer, "")) return 0;
  }
  return 0;
}
