// runtime/docker/docker_client.cc: see docker_client.h for the contract.
//
// Each public call builds one Request (a curl easy handle plus what its options point at),
// starts it on the CurlMulti and, when curl says it is done, turns the HTTP answer into a
// Status and values. Streaming requests (attach, wait, events) also report "headers
// received" and chunks of body (demultiplexed output for attach, lines for events); curl's
// callbacks only buffer those, and the CurlMulti after-action hook delivers them outside
// curl (DeliverStreamEvents).
#include "runtime/docker/docker_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "runtime/core/clock.h"
#include "runtime/core/log.h"
#include "runtime/docker/curl_uv.h"
#include "runtime/json/json.h"

namespace ephemera::docker {
namespace {

constexpr const char* kApiPrefix = "/v1.41";
constexpr long kConnectTimeoutMs = 2000;
// Logs of a chatty container could be large; beyond this we fail instead of growing.
constexpr size_t kMaxResponseBytes = 64u << 20;
// An engine event is a few hundred bytes; a line longer than this is not one.
constexpr size_t kMaxEventLineBytes = 1u << 20;
constexpr const char* kBuildHint = "build it with make -f Makefile.docker images";

struct CurlEasyDeleter {
  void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

// Percent-encodes `s` for a URL. Path segments keep '/', ':' and '@' (image references
// such as "ephemera/echo:latest" and digests go into paths verbatim, as the docker CLI does).
std::string Escape(std::string_view s, bool path_segment) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' ||
                (path_segment && (c == '/' || c == ':' || c == '@'));
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool Is2xx(long status) {
  return status >= 200 && status < 300;
}

std::string FormatDuration(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Error mapping.

std::string EngineMessage(std::string_view body) {
  if (auto j = json::Parse(body)) {
    if (auto m = json::GetString(j.get(), "message")) return *m;
  }
  size_t b = 0, e = body.size();
  while (b < e && std::isspace(static_cast<unsigned char>(body[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(body[e - 1]))) --e;
  std::string out(body.substr(b, std::min<size_t>(e - b, 300)));
  if (out.empty()) out = "(empty response)";
  return out;
}

Status EngineError(std::string_view operation, Target target, std::string_view name,
                   long http_status, std::string_view body) {
  std::string message = EngineMessage(body);
  std::string what = target == Target::kImage       ? "image "
                     : target == Target::kContainer ? "container "
                                                    : "";
  what.append(name);
  std::string op(operation);
  switch (http_status) {
    case 404:
      if (target == Target::kImage && message.find("etwork") == std::string::npos) {
        // The build hint helps only for the project's own example images.
        if (name.rfind("ephemera/", 0) == 0) return NotFound(what + " not found: " + kBuildHint);
        return NotFound(what + " not found on the engine (it does not pull: build or load it)");
      }
      if (target == Target::kContainer) return NotFound(what + " not found (" + op + ")");
      return NotFound("cannot " + op + " " + what + ": " + message);
    case 409: return Conflict("cannot " + op + " " + what + ": " + message);
    case 400: return InvalidArgument("cannot " + op + " " + what + ": " + message);
    default:
      return Internal("docker " + op + " " + what + " failed: HTTP " + std::to_string(http_status) +
                      ": " + message);
  }
}

Status TransportError(std::string_view endpoint, std::string_view operation, int curl_code,
                      std::string_view curl_message) {
  std::string detail(curl_message.empty() ? curl_easy_strerror(static_cast<CURLcode>(curl_code))
                                          : curl_message);
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_OPERATION_TIMEDOUT:
      return Timeout("docker " + std::string(operation) + " timed out: the Docker engine at " +
                     std::string(endpoint) + " did not answer: " + detail);
    case CURLE_WRITE_ERROR:
      return TooLarge("docker " + std::string(operation) + ": response larger than " +
                      std::to_string(kMaxResponseBytes >> 20) + " MiB");
    case CURLE_FAILED_INIT:
      return Internal("docker " + std::string(operation) + ": cannot start the request: " + detail);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    default:
      return Unavailable("cannot reach the Docker engine at " + std::string(endpoint) + ": " +
                         detail + "; is dockerd running? (scripts/setup.sh starts it)");
  }
}

// ---------------------------------------------------------------------------------------
// Stream framing.

void DockerStreamDemuxer::Feed(std::string_view bytes, const PayloadCallback& on_payload) {
  while (!bytes.empty()) {
    if (raw_) {
      on_payload(StreamType::kStdout, bytes);
      return;
    }
    if (remaining_ > 0) {
      size_t n = std::min<size_t>(remaining_, bytes.size());
      on_payload(type_, bytes.substr(0, n));
      remaining_ -= static_cast<uint32_t>(n);
      bytes.remove_prefix(n);
      continue;
    }
    size_t n = std::min(sizeof header_ - header_fill_, bytes.size());
    std::memcpy(header_ + header_fill_, bytes.data(), n);
    // A frame header starts with 0, 1 or 2 followed by three zero bytes; anything else
    // means the stream is not multiplexed (TTY): pass it all through unchanged.
    bool valid = header_[0] <= 2;
    for (size_t i = 1; i < std::min<size_t>(header_fill_ + n, 4); ++i) valid &= header_[i] == 0;
    if (!valid) {
      raw_ = true;
      std::string held(reinterpret_cast<const char*>(header_), header_fill_);
      header_fill_ = 0;
      if (!held.empty()) on_payload(StreamType::kStdout, held);
      continue;  // `bytes` still starts at this call's first unread byte
    }
    header_fill_ += n;
    bytes.remove_prefix(n);
    if (header_fill_ < sizeof header_) continue;
    header_fill_ = 0;
    type_ = header_[0] == 2 ? StreamType::kStderr : StreamType::kStdout;
    remaining_ = (uint32_t{header_[4]} << 24) | (uint32_t{header_[5]} << 16) |
                 (uint32_t{header_[6]} << 8) | uint32_t{header_[7]};
  }
}

void LineSplitter::Feed(std::string_view bytes, std::vector<std::string>* lines) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(bytes);
      return;
    }
    partial_.append(bytes.substr(0, nl));
    bytes.remove_prefix(nl + 1);
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    if (!partial_.empty()) lines->push_back(std::move(partial_));
    partial_.clear();
  }
}

namespace {
// A JSON number as an int; 0 if it is not a number, the nearest int if out of range (a
// plain cast of an out-of-range double is undefined behaviour).
int IntOf(const cJSON* obj, const char* key) {
  double v = json::GetNumber(obj, key).value_or(0);
  if (!(v == v)) return 0;  // NaN
  if (v >= 2147483647.0) return 2147483647;
  if (v <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int>(v);
}
}  // namespace

Status ParseImageInspect(std::string_view body, ImageConfig* out) {
  auto j = json::Parse(body);
  if (!cJSON_IsObject(j.get())) return InvalidArgument("malformed JSON from the engine");
  ImageConfig config;
  config.id = json::GetString(j.get(), "Id").value_or("");
  const cJSON* cfg = cJSON_GetObjectItemCaseSensitive(j.get(), "Config");
  config.entrypoint = json::GetStringArray(cfg, "Entrypoint").value_or(std::vector<std::string>{});
  config.cmd = json::GetStringArray(cfg, "Cmd").value_or(std::vector<std::string>{});
  config.env = json::GetStringArray(cfg, "Env").value_or(std::vector<std::string>{});
  config.working_dir = json::GetString(cfg, "WorkingDir").value_or("");
  config.user = json::GetString(cfg, "User").value_or("");
  *out = std::move(config);
  return Status::Ok();
}

Status ParseContainerInspect(std::string_view body, ContainerState* out) {
  auto j = json::Parse(body);
  const cJSON* s = j ? cJSON_GetObjectItemCaseSensitive(j.get(), "State") : nullptr;
  if (!cJSON_IsObject(s)) return InvalidArgument("no State in the answer");
  ContainerState state;
  state.status = json::GetString(s, "Status").value_or("");
  state.running = json::GetBool(s, "Running").value_or(false);
  state.oom_killed = json::GetBool(s, "OOMKilled").value_or(false);
  state.pid = IntOf(s, "Pid");
  state.exit_code = IntOf(s, "ExitCode");
  state.error = json::GetString(s, "Error").value_or("");
  *out = std::move(state);
  return Status::Ok();
}

Status ParseContainerList(std::string_view body, std::vector<ContainerSummary>* out) {
  auto j = json::Parse(body);
  if (!cJSON_IsArray(j.get())) return InvalidArgument("malformed JSON");
  std::vector<ContainerSummary> rows;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, j.get()) {
    ContainerSummary row;
    row.id = json::GetString(item, "Id").value_or("");
    if (row.id.empty()) continue;
    row.state = json::GetString(item, "State").value_or("");
    const cJSON* label = nullptr;
    cJSON_ArrayForEach(label, cJSON_GetObjectItemCaseSensitive(item, "Labels")) {
      if (cJSON_IsString(label) && label->string != nullptr) {
        row.labels[label->string] = label->valuestring;
      }
    }
    rows.push_back(std::move(row));
  }
  *out = std::move(rows);
  return Status::Ok();
}

std::optional<EngineEvent> ParseEngineEvent(std::string_view line) {
  auto j = json::Parse(line);
  if (!cJSON_IsObject(j.get())) return std::nullopt;
  EngineEvent e;
  e.type = json::GetString(j.get(), "Type").value_or("");
  // "status" and "id" are the pre-1.22 names, still sent next to the new ones.
  e.action =
      json::GetString(j.get(), "Action").value_or(json::GetString(j.get(), "status").value_or(""));
  if (e.type.empty() && e.action.empty()) return std::nullopt;
  const cJSON* actor = cJSON_GetObjectItemCaseSensitive(j.get(), "Actor");
  e.id = json::GetString(actor, "ID").value_or(json::GetString(j.get(), "id").value_or(""));
  const cJSON* attr = nullptr;
  cJSON_ArrayForEach(attr, cJSON_GetObjectItemCaseSensitive(actor, "Attributes")) {
    if (cJSON_IsString(attr) && attr->string != nullptr)
      e.attributes[attr->string] = attr->valuestring;
  }
  // timeNano (~1.8e18) does not fit a double exactly: read its digits from the text. The
  // engine writes it last, and `"timeNano":` cannot occur inside a JSON string (its quotes
  // would be escaped), so the last occurrence is the member.
  if (size_t at = line.rfind("\"timeNano\":"); at != std::string_view::npos) {
    std::string digits;
    for (size_t i = at + 11; i < line.size() && i < at + 40; ++i) {
      char c = line[i];
      if (c >= '0' && c <= '9') {
        digits.push_back(c);
      } else if (c != ' ' || !digits.empty()) {
        break;
      }
    }
    if (!digits.empty()) e.time_nano = std::strtoll(digits.c_str(), nullptr, 10);
  }
  if (e.time_nano == 0) {
    // Older engines send seconds only; a value past int64 nanoseconds is not a time.
    double secs = json::GetNumber(j.get(), "time").value_or(0);
    if (secs > 0 && secs < 9.2e9) e.time_nano = static_cast<int64_t>(secs * 1e9);
  }
  return e;
}

std::string NormalizeImageRef(std::string_view ref) {
  std::string s(ref);
  if (s.rfind("sha256:", 0) == 0) return s;
  std::string digest;
  if (size_t at = s.find('@'); at != std::string::npos) {
    digest = s.substr(at);
    s.resize(at);
  }
  // The first component is a registry domain if it has a '.' or a ':' or is localhost
  // (the rule of the engine's reference parser). Docker Hub's is dropped, with "library/".
  bool other_registry = false;
  if (size_t slash = s.find('/'); slash != std::string::npos) {
    std::string_view first = std::string_view(s).substr(0, slash);
    bool domain = first.find_first_of(".:") != std::string_view::npos || first == "localhost";
    if (domain && (first == "docker.io" || first == "index.docker.io")) {
      s.erase(0, slash + 1);
    } else if (domain) {
      other_registry = true;
    }
    if (!other_registry && s.rfind("library/", 0) == 0 && s.find('/', 8) == std::string::npos) {
      s.erase(0, 8);
    }
  }
  size_t last_slash = s.rfind('/');
  size_t colon = s.rfind(':');
  bool tagged =
      colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash);
  if (!tagged && digest.empty() && !s.empty()) s += ":latest";
  return s + digest;
}

// ---------------------------------------------------------------------------------------
// Requests.

struct DockerClient::Request {
  uint64_t id = 0;
  std::string method, path;  // for the debug log
  std::unique_ptr<CURL, CurlEasyDeleter> easy;
  std::unique_ptr<curl_slist, CurlSlistDeleter> headers;
  std::string request_body;
  std::string response_body;  // non-2xx and non-streaming bodies
  char error[CURL_ERROR_SIZE] = {};
  double started_ms = 0;

  // Streaming: on_headers runs once (2xx only) and on_data for body chunks, both from
  // DeliverStreamEvents, never from inside curl.
  bool streaming = false;
  bool headers_done = false;      // a final (non-1xx) header block has ended
  bool headers_reported = false;  // on_headers has run (or been skipped: non-2xx)
  long http_status = 0;
  std::string stream_pending;  // 2xx streaming body bytes not yet delivered
  DockerStreamDemuxer demuxer;
  std::function<void(Request&)> on_headers;
  std::function<void(StreamType, std::string_view)> on_data;
  // Line mode (events): the body is cut into lines, each delivered to on_line.
  bool line_mode = false;
  size_t line_fill = 0;  // bytes since the last '\n' seen by curl's write callback
  LineSplitter lines;
  std::function<void(std::string_view)> on_line;

  std::function<void(Request&, int)> finish;
  DockerClient* client = nullptr;
  bool cancelled = false;  // by Cancel(); freed on a later loop iteration, never inside a callback

  long status() const { return http_status; }
  bool has_stream_events() const {
    return (headers_done && !headers_reported) || !stream_pending.empty();
  }
};

namespace {

size_t OnCurlHeader(char* buffer, size_t size, size_t count, void* userdata) noexcept {
  auto* r = static_cast<DockerClient::Request*>(userdata);
  size_t n = size * count;
  std::string_view line(buffer, n);
  if (line.substr(0, 5) == "HTTP/") {
    r->headers_done = false;  // a new header block (after a 1xx, or the first one)
  } else if (line == "\r\n" || line == "\n") {
    long status = 0;
    curl_easy_getinfo(r->easy.get(), CURLINFO_RESPONSE_CODE, &status);
    r->http_status = status;
    if (status >= 200) r->headers_done = true;
  }
  return n;
}

size_t OnCurlWrite(char* data, size_t size, size_t count, void* userdata) noexcept {
  auto* r = static_cast<DockerClient::Request*>(userdata);
  size_t n = size * count;
  bool stream = r->streaming && Is2xx(r->http_status);
  std::string& sink = stream ? r->stream_pending : r->response_body;
  if (sink.size() + n > kMaxResponseBytes) return 0;  // curl fails with CURLE_WRITE_ERROR
  if (stream && r->line_mode) {
    const void* nl = n > 0 ? memrchr(data, '\n', n) : nullptr;
    r->line_fill = nl != nullptr ? static_cast<size_t>(data + n - static_cast<const char*>(nl) - 1)
                                 : r->line_fill + n;
    if (r->line_fill > kMaxEventLineBytes) return 0;
  }
  try {
    sink.append(data, n);
  } catch (...) {
    return 0;
  }
  return n;
}

}  // namespace

std::string DockerClient::DefaultSocketPath() {
  const char* host = std::getenv("DOCKER_HOST");
  if (host != nullptr && *host != '\0') return host;
  return "/var/run/docker.sock";
}

std::unique_ptr<DockerClient> DockerClient::Create(uv_loop_t* loop, std::string endpoint,
                                                   Status* error) {
  auto fail = [&](Status s) -> std::unique_ptr<DockerClient> {
    if (error != nullptr) *error = std::move(s);
    return nullptr;
  };
  std::string unix_socket, base_url;
  std::string_view e = endpoint;
  if (e.substr(0, 7) == "unix://") {
    unix_socket = std::string(e.substr(7));
  } else if (!e.empty() && e[0] == '/') {
    unix_socket = endpoint;
  } else if (e.substr(0, 6) == "tcp://") {
    base_url = "http://" + std::string(e.substr(6));
  } else if (e.substr(0, 7) == "http://") {
    base_url = endpoint;
  } else {
    return fail(InvalidArgument("unsupported Docker endpoint \"" + endpoint +
                                "\": use unix:///path/to/docker.sock or tcp://host:port "
                                "(plain HTTP; TLS is not supported)"));
  }
  if (!base_url.empty()) {
    while (base_url.size() > 7 && base_url.back() == '/') base_url.pop_back();
  } else if (unix_socket.empty() || unix_socket[0] != '/') {
    return fail(InvalidArgument("Docker socket path must be absolute: \"" + endpoint + "\""));
  } else {
    base_url = "http://localhost";
  }
  base_url += kApiPrefix;

  std::unique_ptr<DockerClient> client(
      new DockerClient(loop, std::move(endpoint), std::move(unix_socket), std::move(base_url)));
  client->multi_ = CurlMulti::Create(loop);
  if (!client->multi_ || client->defer_timer_.Init(loop, uv_timer_init) < 0) {
    return fail(Internal("cannot set up the Docker client (out of memory?)"));
  }
  client->defer_timer_.get()->data = client.get();
  DockerClient* self = client.get();
  client->multi_->SetAfterAction([self] { self->DeliverStreamEvents(); });
  if (error != nullptr) *error = Status::Ok();
  return client;
}

DockerClient::DockerClient(uv_loop_t* loop, std::string endpoint, std::string unix_socket,
                           std::string base_url)
    : loop_(loop),
      endpoint_(std::move(endpoint)),
      unix_socket_(std::move(unix_socket)),
      base_url_(std::move(base_url)) {}

DockerClient::~DockerClient() {
  *alive_ = false;
  // The multi first: it removes every easy handle (running no callback), and only then
  // may the handles and the buffers they point at be freed.
  multi_.reset();
  requests_.clear();
  if (defer_timer_) defer_timer_.get()->data = nullptr;
}

size_t DockerClient::in_flight() const noexcept {
  return requests_.size();
}

void DockerClient::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (deferred_.size() > 1) return;  // already armed
  uv_timer_start(
      defer_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<DockerClient*>(t->data);
        if (self == nullptr) return;
        try {
          self->RunDeferred();
        } catch (...) {
          LOG_ERROR("docker", "exception escaped a deferred callback");
        }
      },
      0, 0);
}

void DockerClient::RunDeferred() {
  auto batch = std::move(deferred_);
  deferred_.clear();
  auto alive = alive_;
  for (auto& fn : batch) {
    try {
      fn();
    } catch (...) {
      LOG_ERROR("docker", "exception escaped a callback");
    }
    if (!*alive) return;
  }
}

DockerClient::Request* DockerClient::Send(std::string method, std::string path, std::string body,
                                          bool streaming,
                                          std::function<void(Request&, int)> finish) {
  auto r = std::make_unique<Request>();
  r->id = next_request_id_++;
  r->method = std::move(method);
  r->path = std::move(path);
  r->request_body = std::move(body);
  r->streaming = streaming;
  r->finish = std::move(finish);
  r->client = this;
  r->started_ms = MonotonicMs();
  r->easy.reset(curl_easy_init());
  CURL* easy = r->easy.get();
  if (easy == nullptr) {
    uint64_t id = r->id;
    requests_[id] = std::move(r);
    Defer([this, id] { OnTransferDone(id, CURLE_FAILED_INIT); });
    return requests_[id].get();
  }

  std::string url = base_url_ + r->path;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  if (!unix_socket_.empty()) curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, unix_socket_.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, "");  // never route the engine through $http_proxy
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "ephemera");
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, streaming ? 0L : request_timeout_ms_);
  if (unix_socket_.empty()) curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnCurlWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, r.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnCurlHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, r.get());

  curl_slist* headers = curl_slist_append(nullptr, "Expect:");  // no 100-continue round trip
  if (r->method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->request_body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r->request_body.size()));
    if (!r->request_body.empty()) {
      headers = curl_slist_append(headers, "Content-Type: application/json");
    }
  } else if (r->method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r->method.c_str());
  }
  r->headers.reset(headers);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);

  uint64_t id = r->id;
  Request* raw = r.get();
  requests_[id] = std::move(r);
  if (Status s = multi_->Add(easy, [this, id](CURLcode code) { OnTransferDone(id, code); });
      !s.ok()) {
    LOG_ERROR("docker", "%s", s.message().c_str());
    Defer([this, id] { OnTransferDone(id, CURLE_FAILED_INIT); });
  }
  return raw;
}

void DockerClient::OnTransferDone(uint64_t request_id, int curl_code) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;
  if (it->second->cancelled) return;  // Cancel() frees it
  if (it->second->streaming) {
    // What arrived with the end goes out first, while the request is still findable: a
    // callback may Cancel() it (then nothing else runs) or destroy the client.
    Request& pending = *it->second;
    if (!DeliverStreamEventsOf(pending)) return;
    if (pending.cancelled) return;
    it = requests_.find(request_id);  // callbacks may have added requests (rehash)
    if (it == requests_.end()) return;
  }
  std::unique_ptr<Request> r = std::move(it->second);
  requests_.erase(it);
  long new_connections = 0;
  if (r->easy) {
    if (r->http_status == 0)
      curl_easy_getinfo(r->easy.get(), CURLINFO_RESPONSE_CODE, &r->http_status);
    curl_easy_getinfo(r->easy.get(), CURLINFO_NUM_CONNECTS, &new_connections);
    connections_opened_ += static_cast<uint64_t>(std::max(0L, new_connections));
  }
  LOG_DEBUG("docker", "%s %s -> %ld%s%s in %s%s", r->method.c_str(), r->path.c_str(),
            r->http_status, curl_code == CURLE_OK ? "" : ", curl: ",
            curl_code == CURLE_OK ? "" : curl_easy_strerror(static_cast<CURLcode>(curl_code)),
            FormatDuration(MonotonicMs() - r->started_ms).c_str(),
            new_connections > 0 ? " (new connection)" : "");
  // The request stays alive (local) while finish runs, and is freed after it: its easy
  // handle is no longer in the multi, so nothing reaches it.
  r->finish(*r, curl_code);
}

void DockerClient::DeliverStreamEvents() {
  std::vector<uint64_t> ready;
  for (auto& [id, r] : requests_) {
    if (r->streaming && r->has_stream_events()) ready.push_back(id);
  }
  for (uint64_t id : ready) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    if (!DeliverStreamEventsOf(*it->second)) return;
  }
}

bool DockerClient::DeliverStreamEventsOf(Request& r) {
  auto alive = alive_;
  if (r.cancelled) return true;
  if (r.headers_done && !r.headers_reported) {
    r.headers_reported = true;
    LOG_DEBUG("docker", "%s %s -> %ld, answer began in %s", r.method.c_str(), r.path.c_str(),
              r.http_status, FormatDuration(MonotonicMs() - r.started_ms).c_str());
    if (Is2xx(r.http_status) && r.on_headers) {
      auto on_headers = r.on_headers;  // a copy: Cancel() may reset the member meanwhile
      on_headers(r);
      if (!*alive) return false;
      if (r.cancelled) return true;
    }
  }
  if (r.stream_pending.empty() || (!r.on_data && !r.on_line)) return true;
  std::string bytes = std::move(r.stream_pending);
  r.stream_pending.clear();
  if (r.on_line) {
    std::vector<std::string> lines;
    r.lines.Feed(bytes, &lines);
    auto on_line = r.on_line;  // a copy: the request dies with the client
    for (const std::string& line : lines) {
      on_line(line);
      if (!*alive) return false;
      if (r.cancelled) return true;
    }
    return true;
  }
  // Decode first, deliver after: a callback may destroy the client, demuxer included.
  std::vector<std::pair<StreamType, std::string>> pieces;
  r.demuxer.Feed(bytes, [&](StreamType t, std::string_view p) {
    if (!pieces.empty() && pieces.back().first == t) {
      pieces.back().second.append(p);
    } else {
      pieces.emplace_back(t, std::string(p));
    }
  });
  auto on_data = r.on_data;  // a copy: the request dies with the client
  for (auto& [type, payload] : pieces) {
    on_data(type, payload);
    if (!*alive) return false;
    if (r.cancelled) return true;
  }
  return true;
}

void DockerClient::Cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->cancelled) return;
  Request& r = *it->second;
  r.cancelled = true;
  if (r.easy) multi_->Remove(r.easy.get());  // closes its connection; its done never runs
  r.on_headers = nullptr;
  r.on_data = nullptr;
  r.on_line = nullptr;
  // The request may be the one whose callback is running now: free it later
  // (docs/style.md rule 4).
  Defer([this, id] { requests_.erase(id); });
}

// ---------------------------------------------------------------------------------------
// The calls.

void DockerClient::Ping(std::function<void(Status)> done) {
  Send("GET", "/_ping", "", false, [done = std::move(done)](Request& r, int code) {
    DockerClient* c = r.client;
    if (code != CURLE_OK) return done(TransportError(c->endpoint_, "ping", code, r.error));
    if (r.status() != 200)
      return done(EngineError("ping", Target::kEngine, "", r.status(), r.response_body));
    done(Status::Ok());
  });
}

// An inspection in flight. Callers that ask while it is on its way join `waiters`; a
// Forget that covers it marks it stale and takes it off image_inflight_, so its answer
// reaches the callers it already has but is not cached, and later callers send anew.
struct DockerClient::ImageInspection {
  std::string image;
  std::vector<std::function<void(Status, const ImageConfig&)>> waiters;
  bool stale = false;
};

template <typename Pred>
void DockerClient::StaleInflight(Pred pred) {
  for (auto it = image_inflight_.begin(); it != image_inflight_.end();) {
    if (pred(it->first)) {
      it->second->stale = true;
      it = image_inflight_.erase(it);
    } else {
      ++it;
    }
  }
}

void DockerClient::ForgetImage(const std::string& image) {
  std::string want = NormalizeImageRef(image);
  auto same = [&](const std::string& name) {
    return name == image || NormalizeImageRef(name) == want;
  };
  std::erase_if(image_cache_, [&](const auto& entry) { return same(entry.first); });
  StaleInflight(same);
}

void DockerClient::ForgetImageId(const std::string& image_id) {
  std::erase_if(image_cache_, [&](const auto& entry) {
    return entry.second.id == image_id || entry.first == image_id;
  });
  StaleInflight([](const std::string&) { return true; });
}

void DockerClient::ForgetAllImages() {
  image_cache_.clear();
  StaleInflight([](const std::string&) { return true; });
}

void DockerClient::set_image_cache_enabled(bool enabled) {
  if (!enabled) ForgetAllImages();
  image_cache_enabled_ = enabled;
}

void DockerClient::InspectImage(const std::string& image,
                                std::function<void(Status, const ImageConfig&)> done) {
  if (image_cache_enabled_) {
    if (auto hit = image_cache_.find(image); hit != image_cache_.end()) {
      Defer([done = std::move(done), config = hit->second] { done(Status::Ok(), config); });
      return;
    }
    if (auto flying = image_inflight_.find(image); flying != image_inflight_.end()) {
      flying->second->waiters.push_back(std::move(done));
      return;
    }
  }
  auto inspection = std::make_shared<ImageInspection>();
  inspection->image = image;
  inspection->waiters.push_back(std::move(done));
  if (image_cache_enabled_) {
    image_inflight_[image] = inspection;
  } else {
    // Asked while nobody vouched for the cache: even if the cache is back on when the
    // answer comes, that answer may predate the forget that came with it.
    inspection->stale = true;
  }
  ++image_inspections_sent_;
  Send("GET", "/images/" + Escape(image, true) + "/json", "", false,
       [inspection](Request& r, int code) {
         DockerClient* c = r.client;
         const std::string& image = inspection->image;
         Status status;
         ImageConfig config;
         if (code != CURLE_OK) {
           status = TransportError(c->endpoint_, "inspect image " + image, code, r.error);
         } else if (r.status() != 200) {
           status = EngineError("inspect", Target::kImage, image, r.status(), r.response_body);
         } else if (status = ParseImageInspect(r.response_body, &config); !status.ok()) {
           status = Internal("docker inspect image " + image + ": " + status.message());
         } else if (!inspection->stale && c->image_cache_enabled_) {
           // A stale answer may predate a rebuild or a removal: it is not kept.
           c->image_cache_[image] = config;
         }
         if (auto it = c->image_inflight_.find(image);
             it != c->image_inflight_.end() && it->second == inspection) {
           c->image_inflight_.erase(it);
         }
         auto waiters = std::move(inspection->waiters);
         inspection->waiters.clear();
         auto alive = c->alive_;
         for (auto& w : waiters) {
           w(status, config);
           if (!*alive) return;
         }
       });
}

void DockerClient::TagImage(const std::string& source, const std::string& target,
                            std::function<void(Status)> done) {
  std::string repo = target, tag = "latest";
  size_t slash = target.rfind('/');
  if (size_t colon = target.rfind(':');
      colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    repo = target.substr(0, colon);
    tag = target.substr(colon + 1);
  }
  Send("POST",
       "/images/" + Escape(source, true) + "/tag?repo=" + Escape(repo, false) +
           "&tag=" + Escape(tag, false),
       "", false, [done = std::move(done), source, target](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK) {
           return done(TransportError(c->endpoint_, "tag image " + source + " as " + target, code,
                                      r.error));
         }
         if (r.status() == 201 || r.status() == 200) return done(Status::Ok());
         if (r.status() == 404) return done(NotFound("image " + source + " not found (tag)"));
         done(EngineError("tag", Target::kImage, source + " as " + target, r.status(),
                          r.response_body));
       });
}

void DockerClient::RemoveImage(const std::string& image, std::function<void(Status)> done) {
  Send("DELETE", "/images/" + Escape(image, true), "", false,
       [done = std::move(done), image](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK)
           return done(TransportError(c->endpoint_, "remove image " + image, code, r.error));
         if (r.status() == 200) return done(Status::Ok());
         if (r.status() == 404) return done(NotFound("image " + image + " not found (remove)"));
         done(EngineError("remove", Target::kImage, image, r.status(), r.response_body));
       });
}

DockerClient::RequestId DockerClient::Events(const std::string& filters_json,
                                             std::function<void(const EngineEvent&)> on_event,
                                             std::function<void(Status)> on_end) {
  return Events(filters_json, 0, nullptr, std::move(on_event), std::move(on_end));
}

DockerClient::RequestId DockerClient::Events(const std::string& filters_json, int64_t since_unix_ms,
                                             std::function<void(Status)> on_started,
                                             std::function<void(const EngineEvent&)> on_event,
                                             std::function<void(Status)> on_end) {
  std::string path = "/events";
  char sep = '?';
  if (!filters_json.empty()) {
    path += "?filters=" + Escape(filters_json, false);
    sep = '&';
  }
  if (since_unix_ms > 0) {
    char since[48];
    std::snprintf(since, sizeof since, "%lld.%09lld", static_cast<long long>(since_unix_ms / 1000),
                  static_cast<long long>(since_unix_ms % 1000) * 1000000);
    path += sep;
    path += "since=";
    path += since;
  }
  Request* r =
      Send("GET", path, "", true, [on_started, on_end = std::move(on_end)](Request& r, int code) {
        DockerClient* c = r.client;
        Status status;
        if (code == CURLE_WRITE_ERROR && r.line_fill > kMaxEventLineBytes) {
          status = TooLarge("docker events: a line longer than " +
                            std::to_string(kMaxEventLineBytes >> 20) + " MiB");
        } else if (code != CURLE_OK) {
          status = TransportError(c->endpoint_, "events", code, r.error);
        } else if (!Is2xx(r.status())) {
          status = EngineError("follow", Target::kEngine, "events", r.status(), r.response_body);
        }
        if (r.lines.pending() > 0) {
          LOG_WARN("docker", "events: the stream ended inside a line (%zu bytes dropped)",
                   r.lines.pending());
        }
        bool started = r.headers_reported && Is2xx(r.status());
        if (!started) {
          if (status.ok()) status = Internal("docker events: no answer");
          if (on_started) return on_started(status);
        }
        on_end(status);
      });
  r->line_mode = true;
  if (on_started) {
    r->on_headers = [on_started = std::move(on_started)](Request&) { on_started(Status::Ok()); };
  }
  r->on_line = [on_event = std::move(on_event)](std::string_view line) {
    std::optional<EngineEvent> event = ParseEngineEvent(line);
    if (!event) {
      LOG_WARN("docker", "events: skipped a line that is not an event: %.200s",
               std::string(line).c_str());
      return;
    }
    on_event(*event);
  };
  return r->id;
}

void DockerClient::CreateContainer(const ContainerSpec& spec,
                                   std::function<void(Status, std::string)> done) {
  for (const std::string& bind : spec.binds) {
    if (bind.empty() || bind[0] != '/') {
      Defer([done = std::move(done), bind] {
        done(InvalidArgument("bind \"" + bind +
                             "\" needs an absolute host path (a relative one would silently "
                             "create a named volume)"),
             "");
      });
      return;
    }
  }
  if (spec.image.empty()) {
    Defer(
        [done = std::move(done)] { done(InvalidArgument("container spec without an image"), ""); });
    return;
  }

  json::Json body = json::NewObject();
  cJSON* root = body.get();
  cJSON_AddStringToObject(root, "Image", spec.image.c_str());
  if (!spec.entrypoint.empty()) json::AddStringArray(root, "Entrypoint", spec.entrypoint);
  if (!spec.cmd.empty()) json::AddStringArray(root, "Cmd", spec.cmd);
  if (!spec.env.empty()) json::AddStringArray(root, "Env", spec.env);
  if (!spec.working_dir.empty())
    cJSON_AddStringToObject(root, "WorkingDir", spec.working_dir.c_str());
  if (!spec.user.empty()) cJSON_AddStringToObject(root, "User", spec.user.c_str());
  cJSON_AddBoolToObject(root, "Tty", false);
  cJSON_AddBoolToObject(root, "AttachStdout", true);
  cJSON_AddBoolToObject(root, "AttachStderr", true);
  cJSON* labels = cJSON_AddObjectToObject(root, "Labels");
  for (const auto& [k, v] : spec.labels) cJSON_AddStringToObject(labels, k.c_str(), v.c_str());
  cJSON* host = cJSON_AddObjectToObject(root, "HostConfig");
  if (!spec.binds.empty()) json::AddStringArray(host, "Binds", spec.binds);
  if (!spec.network_mode.empty()) {
    cJSON_AddStringToObject(host, "NetworkMode", spec.network_mode.c_str());
  }
  if (spec.memory_bytes > 0) {
    cJSON_AddNumberToObject(host, "Memory", static_cast<double>(spec.memory_bytes));
    cJSON_AddNumberToObject(host, "MemorySwap", static_cast<double>(spec.memory_bytes));
  }
  if (spec.nano_cpus > 0) {
    cJSON_AddNumberToObject(host, "NanoCpus", static_cast<double>(spec.nano_cpus));
  }
  if (spec.readonly_rootfs) cJSON_AddBoolToObject(host, "ReadonlyRootfs", true);
  if (spec.init) cJSON_AddBoolToObject(host, "Init", true);
  if (spec.pids_limit > 0) {
    cJSON_AddNumberToObject(host, "PidsLimit", static_cast<double>(spec.pids_limit));
  }
  if (!spec.tmpfs.empty()) {
    cJSON* tmpfs = cJSON_AddObjectToObject(host, "Tmpfs");
    for (const auto& [path, options] : spec.tmpfs) {
      cJSON_AddStringToObject(tmpfs, path.c_str(), options.c_str());
    }
  }
  if (!spec.extra_hosts.empty()) json::AddStringArray(host, "ExtraHosts", spec.extra_hosts);
  if (!spec.cap_drop.empty()) json::AddStringArray(host, "CapDrop", spec.cap_drop);
  if (!spec.cap_add.empty()) json::AddStringArray(host, "CapAdd", spec.cap_add);
  if (!spec.security_opt.empty()) json::AddStringArray(host, "SecurityOpt", spec.security_opt);
  if (spec.nofile > 0) {
    cJSON* ulimits = cJSON_AddArrayToObject(host, "Ulimits");
    cJSON* nofile = cJSON_CreateObject();
    cJSON_AddStringToObject(nofile, "Name", "nofile");
    cJSON_AddNumberToObject(nofile, "Soft", static_cast<double>(spec.nofile));
    cJSON_AddNumberToObject(nofile, "Hard", static_cast<double>(spec.nofile));
    cJSON_AddItemToArray(ulimits, nofile);
  }

  std::string path = "/containers/create";
  if (!spec.name.empty()) path += "?name=" + Escape(spec.name, false);
  Send("POST", path, json::Print(root), false,
       [done = std::move(done), image = spec.image](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK) {
           return done(
               TransportError(c->endpoint_, "create container from " + image, code, r.error), "");
         }
         if (r.status() != 201) {
           return done(EngineError("create a container from", Target::kImage, image, r.status(),
                                   r.response_body),
                       "");
         }
         auto j = json::Parse(r.response_body);
         auto id = j ? json::GetString(j.get(), "Id") : std::nullopt;
         if (!id) return done(Internal("docker create: no Id in the engine's answer"), "");
         done(Status::Ok(), *id);
       });
}

void DockerClient::StartContainer(const std::string& id, std::function<void(Status)> done) {
  Send("POST", "/containers/" + Escape(id, true) + "/start", "", false,
       [done = std::move(done), id](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK)
           return done(TransportError(c->endpoint_, "start container " + id, code, r.error));
         if (r.status() == 204 || r.status() == 304) return done(Status::Ok());
         done(EngineError("start", Target::kContainer, id, r.status(), r.response_body));
       });
}

DockerClient::RequestId DockerClient::WaitContainer(const std::string& id,
                                                    std::function<void(Status, int)> done) {
  return WaitContainer(id, nullptr, std::move(done));
}

DockerClient::RequestId DockerClient::WaitContainer(const std::string& id,
                                                    std::function<void(Status)> on_waiting,
                                                    std::function<void(Status, int)> done) {
  Request* r = Send(
      "POST", "/containers/" + Escape(id, true) + "/wait?condition=next-exit", "", true,
      [on_waiting, done = std::move(done), id](Request& r, int code) {
        DockerClient* c = r.client;
        Status status;
        if (code != CURLE_OK) {
          status = TransportError(c->endpoint_, "wait for container " + id, code, r.error);
        } else if (!Is2xx(r.status())) {
          status = EngineError("wait for", Target::kContainer, id, r.status(), r.response_body);
        }
        // Before the engine confirmed the wait, a failure belongs to on_waiting alone.
        bool confirmed = r.headers_reported && Is2xx(r.status());
        if (!confirmed && on_waiting)
          return on_waiting(status.ok() ? Internal("docker wait: no answer") : status);
        if (!status.ok()) return done(status, -1);
        auto j = json::Parse(r.stream_pending);
        auto exit_code = j ? json::GetNumber(j.get(), "StatusCode") : std::nullopt;
        if (!exit_code) {
          return done(Internal("docker wait for container " + id +
                               ": unexpected answer: " + EngineMessage(r.stream_pending)),
                      -1);
        }
        if (const cJSON* err = cJSON_GetObjectItemCaseSensitive(j.get(), "Error");
            cJSON_IsObject(err)) {
          if (auto m = json::GetString(err, "Message"); m && !m->empty()) {
            LOG_WARN("docker", "wait for container %s: %s", id.c_str(), m->c_str());
          }
        }
        done(Status::Ok(), static_cast<int>(*exit_code));
      });
  // The wait body is one small JSON object: keep it buffered (no on_data) until done.
  if (on_waiting) {
    r->on_headers = [on_waiting = std::move(on_waiting)](Request&) { on_waiting(Status::Ok()); };
  }
  return r->id;
}

void DockerClient::KillContainer(const std::string& id, std::function<void(Status)> done) {
  Send("POST", "/containers/" + Escape(id, true) + "/kill", "", false,
       [done = std::move(done), id](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK)
           return done(TransportError(c->endpoint_, "kill container " + id, code, r.error));
         if (r.status() == 204 || r.status() == 409) return done(Status::Ok());  // 409: not running
         done(EngineError("kill", Target::kContainer, id, r.status(), r.response_body));
       });
}

void DockerClient::RemoveContainer(const std::string& id, std::function<void(Status)> done) {
  Send("DELETE", "/containers/" + Escape(id, true) + "?force=true&v=true", "", false,
       [done = std::move(done), id](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK)
           return done(TransportError(c->endpoint_, "remove container " + id, code, r.error));
         if (r.status() == 204 || r.status() == 404)
           return done(Status::Ok());  // 404: already gone
         // 409 "removal ... is already in progress": someone else is removing it.
         if (r.status() == 409 &&
             EngineMessage(r.response_body).find("already in progress") != std::string::npos) {
           return done(Status::Ok());
         }
         done(EngineError("remove", Target::kContainer, id, r.status(), r.response_body));
       });
}

void DockerClient::ListContainers(const std::string& label_filter,
                                  std::function<void(Status, std::vector<std::string>)> done) {
  ListContainerSummaries(label_filter,
                         [done = std::move(done)](Status s, std::vector<ContainerSummary> rows) {
                           std::vector<std::string> ids;
                           ids.reserve(rows.size());
                           for (auto& row : rows) ids.push_back(std::move(row.id));
                           done(std::move(s), std::move(ids));
                         });
}

void DockerClient::ListContainerSummaries(
    const std::string& label_filter,
    std::function<void(Status, std::vector<ContainerSummary>)> done) {
  std::string path = "/containers/json?all=1";
  if (!label_filter.empty()) {
    path += "&filters=" + Escape("{\"label\":[" + json::Quote(label_filter) + "]}", false);
  }
  Send("GET", path, "", false, [done = std::move(done)](Request& r, int code) {
    DockerClient* c = r.client;
    if (code != CURLE_OK)
      return done(TransportError(c->endpoint_, "list containers", code, r.error), {});
    if (r.status() != 200) {
      return done(EngineError("list", Target::kEngine, "containers", r.status(), r.response_body),
                  {});
    }
    std::vector<ContainerSummary> rows;
    if (Status s = ParseContainerList(r.response_body, &rows); !s.ok()) {
      return done(Internal("docker list containers: " + s.message()), {});
    }
    done(Status::Ok(), std::move(rows));
  });
}

void DockerClient::InspectContainer(const std::string& id,
                                    std::function<void(Status, const ContainerState&)> done) {
  Send("GET", "/containers/" + Escape(id, true) + "/json", "", false,
       [done = std::move(done), id](Request& r, int code) {
         DockerClient* c = r.client;
         ContainerState state;
         if (code != CURLE_OK) {
           return done(TransportError(c->endpoint_, "inspect container " + id, code, r.error),
                       state);
         }
         if (r.status() != 200) {
           return done(EngineError("inspect", Target::kContainer, id, r.status(), r.response_body),
                       state);
         }
         if (Status s = ParseContainerInspect(r.response_body, &state); !s.ok()) {
           return done(Internal("docker inspect container " + id + ": " + s.message()), state);
         }
         done(Status::Ok(), state);
       });
}

void DockerClient::Logs(const std::string& id, std::function<void(Status, std::string)> done) {
  Send("GET", "/containers/" + Escape(id, true) + "/logs?stdout=1&stderr=1", "", false,
       [done = std::move(done), id](Request& r, int code) {
         DockerClient* c = r.client;
         if (code != CURLE_OK)
           return done(TransportError(c->endpoint_, "read logs of container " + id, code, r.error),
                       "");
         if (r.status() != 200) {
           return done(
               EngineError("read logs of", Target::kContainer, id, r.status(), r.response_body),
               "");
         }
         std::string out;
         DockerStreamDemuxer demuxer;
         demuxer.Feed(r.response_body, [&](StreamType, std::string_view p) { out.append(p); });
         done(Status::Ok(), std::move(out));
       });
}

DockerClient::RequestId DockerClient::Attach(
    const std::string& id, std::function<void(Status)> on_attached,
    std::function<void(StreamType, std::string_view)> on_data, std::function<void(Status)> on_end) {
  Request* r = Send(
      "POST", "/containers/" + Escape(id, true) + "/attach?stream=1&stdout=1&stderr=1", "", true,
      [on_attached, on_end = std::move(on_end), id](Request& r, int code) {
        DockerClient* c = r.client;
        Status status;
        if (code != CURLE_OK) {
          status = TransportError(c->endpoint_, "attach to container " + id, code, r.error);
        } else if (!Is2xx(r.status())) {
          status = EngineError("attach to", Target::kContainer, id, r.status(), r.response_body);
        }
        bool attached = r.headers_reported && Is2xx(r.status());
        if (!attached)
          return on_attached(status.ok() ? Internal("docker attach: no answer") : status);
        on_end(status);
      });
  r->on_headers = [on_attached = std::move(on_attached)](Request&) { on_attached(Status::Ok()); };
  r->on_data = std::move(on_data);
  return r->id;
}

}  // namespace ephemera::docker
