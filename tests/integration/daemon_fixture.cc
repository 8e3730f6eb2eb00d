#include "tests/integration/daemon_fixture.h"

#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "runtime/json/json.h"

namespace ephemera::testing {
namespace {

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<HttpResult*>(user)->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    static_cast<HttpResult*>(user)->headers[name] = value;
  }
  return size * n;
}

HttpResult Perform(const std::string& method, const std::string& url, const std::string& body,
                   const std::vector<std::string>& headers, const char* unix_socket) {
  HttpResult r;
  CURL* curl = curl_easy_init();
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  if (unix_socket != nullptr) curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
  if (method == "POST" || method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return r;
}

}  // namespace

std::string HttpResult::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

HttpResult Http(const std::string& method, const std::string& url, const std::string& body,
                const std::vector<std::string>& headers) {
  return Perform(method, url, body, headers, nullptr);
}

HttpResult DockerGet(const std::string& path) {
  return Perform("GET", "http://localhost" + path, "", {}, "/var/run/docker.sock");
}

std::vector<std::string> ContainersWithLabels(const std::vector<std::string>& labels) {
  std::string list;
  for (const auto& l : labels) list += (list.empty() ? "\"" : ",\"") + l + "\"";
  char* escaped = curl_easy_escape(nullptr, ("{\"label\":[" + list + "]}").c_str(), 0);
  HttpResult r = DockerGet(std::string("/v1.41/containers/json?all=1&filters=") + escaped);
  curl_free(escaped);
  std::vector<std::string> ids;
  auto j = json::Parse(r.body);
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, j.get()) {
    ids.push_back(json::GetString(item, "Id").value_or("?"));
  }
  return ids;
}

std::vector<std::string> ContainersWithLabel(const std::string& label) {
  return ContainersWithLabels({label});
}

std::vector<std::string> EnvironmentsOf(int pid) {
  return ContainersWithLabels({"ephemera.daemon=" + std::to_string(pid), "ephemera.environment"});
}

std::string BinaryPath() {
  return EPHEMERA_BINARY_DIR "/bin/ephemera";
}
std::string RegistryPath() {
  return EPHEMERA_SOURCE_DIR "/registry/functions.json";
}

Daemon::~Daemon() {
  if (pid_ > 0) Stop();
  if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
}

std::string Daemon::Start(const Options& options) {
  if (dir_.empty()) {
    char tmpl[] = "/tmp/ephemera-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
  }
  state_path_ = options.state_path.empty() ? dir_ + "/state.json" : options.state_path;
  log_path_ = dir_ + "/daemon.log";
  std::string port_file = dir_ + "/stdout";
  std::vector<std::string> args = {BinaryPath(), "serve",        "--listen", "127.0.0.1:0",
                                   "--registry", RegistryPath(), "--state",  state_path_};
  // A sanitizer build of the daemon runs with the normal static shim (a sanitized shim
  // is not static, so it cannot run in FROM scratch images): scripts/test.sh points here.
  if (const char* shim = std::getenv("EPHEMERA_TEST_SHIM"); shim != nullptr && *shim != '\0') {
    args.push_back("--shim");
    args.push_back(shim);
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  // Daemons on the shared Redis with one prefix share one Event queue (by design), so a
  // test's Event invocation could run in another test's daemon: each Daemon gets a
  // prefix of its own (the same across its restarts), unless the test chose the Redis
  // or the prefix.
  auto given = [&](const char* flag) {
    return std::find(options.extra_args.begin(), options.extra_args.end(), flag) !=
           options.extra_args.end();
  };
  if (!given("--redis") && !given("--redis-prefix")) {
    args.push_back("--redis-prefix");
    args.push_back(dir_.substr(dir_.rfind('/') + 1) + ":");
  }
  std::remove(port_file.c_str());  // a restart must not read the previous port
  pid_ = fork();
  if (pid_ == 0) {
    FILE* out = std::freopen(port_file.c_str(), "w", stdout);
    FILE* err = std::freopen(log_path_.c_str(), "a", stderr);
    (void)out;
    (void)err;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // The daemon prints "ephemera: listening on http://127.0.0.1:PORT ..." once bound.
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(port_file);
    std::string line;
    std::getline(in, line);
    size_t at = line.find("http://127.0.0.1:");
    if (at != std::string::npos) {
      port_ = std::atoi(line.c_str() + at + 17);
      return "";
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return "the daemon exited before listening; log:\n" + log();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "the daemon did not listen within 10 s; log:\n" + log();
}

int Daemon::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool Daemon::WaitIdle(int timeout_ms) const {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    HttpResult r = Http("GET", url() + "/healthz");
    auto j = json::Parse(r.body);
    if (j && json::GetNumber(j.get(), "in_flight").value_or(-1) == 0 &&
        json::GetNumber(j.get(), "disposing").value_or(-1) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool WaitUntil(const std::function<bool()>& cond, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

std::string Daemon::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long Daemon::RssKib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

HttpResult Daemon::Invoke(const std::string& function, const std::string& payload,
                          const std::vector<std::string>& headers) const {
  return Http("POST", url() + "/2015-03-31/functions/" + function + "/invocations", payload,
              headers);
}

double Daemon::Metric(const std::string& name) const {
  HttpResult r = Http("GET", url() + "/metrics");
  size_t at = r.body.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(r.body.substr(at + name.size() + 2));
}

}  // namespace ephemera::testing
