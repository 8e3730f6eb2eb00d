// bench/probes.cc: one cold start through the daemon, the raw floor, and docker run.
#include "bench/probes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/uv_handle.h"
#include "runtime/http/http_server.h"

namespace ephemera::bench {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n'))
    --e;
  return std::string(s.substr(b, e - b));
}

std::string Shorten(std::string s, size_t max = 200) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

}  // namespace

std::map<std::string, double> ParseServerTiming(std::string_view header) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    std::string_view entry =
        header.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? header.size() + 1 : comma + 1;
    size_t semi = entry.find(';');
    std::string name = Trim(entry.substr(0, semi));
    if (name.empty() || semi == std::string_view::npos) continue;
    std::string_view params = entry.substr(semi + 1);
    size_t dur = params.find("dur=");
    if (dur == std::string_view::npos) continue;
    std::string value = Trim(params.substr(dur + 4));
    char* end = nullptr;
    double ms = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    out[name] = ms;
  }
  return out;
}

// ---- EphemeraClient ----

struct EphemeraClient::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string request_body;
  HttpReply reply;  // headers and body as they arrive
  double t0 = 0;
  std::function<void(Transfer&, CURLcode)> finish;

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
  std::string Header(std::string_view name) const { return reply.Header(name); }
  long Status() const {
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
};

namespace {

size_t OnBody(char* data, size_t size, size_t n, void* user) noexcept {
  try {
    static_cast<EphemeraClient::Transfer*>(user)->reply.body.append(data, size * n);
    return size * n;
  } catch (...) {
    return 0;  // curl aborts the transfer
  }
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) noexcept {
  try {
    auto* t = static_cast<EphemeraClient::Transfer*>(user);
    std::string_view line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
      t->reply.headers.clear();  // a new response (after 100 Continue, say)
    } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      t->reply.headers.emplace_back(Trim(line.substr(0, colon)), Trim(line.substr(colon + 1)));
    }
    return size * n;
  } catch (...) {
    return 0;
  }
}

}  // namespace

std::string HttpReply::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return "";
}

std::unique_ptr<EphemeraClient> EphemeraClient::Create(uv_loop_t* loop, std::string endpoint,
                                                       long connections) {
  auto multi = docker::CurlMulti::Create(loop, connections);
  if (!multi) return nullptr;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return std::unique_ptr<EphemeraClient>(new EphemeraClient(std::move(endpoint), std::move(multi)));
}

EphemeraClient::EphemeraClient(std::string endpoint, std::unique_ptr<docker::CurlMulti> multi)
    : endpoint_(std::move(endpoint)), multi_(std::move(multi)) {}

EphemeraClient::~EphemeraClient() {
  for (const auto& [raw, t] : transfers_) multi_->Remove(t->easy);
  transfers_.clear();
}

EphemeraClient::Transfer* EphemeraClient::Start(const std::string& method, const std::string& path,
                                                std::string body) {
  auto t = std::make_unique<Transfer>();
  t->easy = curl_easy_init();
  if (t->easy == nullptr) return nullptr;
  t->request_body = std::move(body);
  SetTransferOptions(t->easy, endpoint_ + path, OnBody, OnHeader, t.get());
  if (method == "DELETE") curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, "DELETE");
  if (method == "POST") t->headers = SetJsonPost(t->easy, t->request_body, t->headers);
  Transfer* raw = t.get();
  t->t0 = MonotonicMs();
  Status s = multi_->Add(raw->easy, [this, raw](CURLcode rc) {
    auto it = transfers_.find(raw);
    if (it == transfers_.end()) return;
    std::unique_ptr<Transfer> owned = std::move(it->second);
    transfers_.erase(it);
    if (owned->finish) owned->finish(*owned, rc);
  });
  if (!s.ok()) return nullptr;
  transfers_.emplace(raw, std::move(t));
  return raw;
}

namespace {

// Runs `fn` on the next loop turn (never from inside the call that failed).
void Soon(uv_loop_t* loop, std::function<void()> fn) {
  auto timer = std::make_shared<Timer>(loop);
  timer->Start(0, [timer, fn = std::move(fn)] {
    fn();
    timer->Close();
  });
}

}  // namespace

void EphemeraClient::Invoke(const std::string& function, const std::string& payload,
                            const std::string& expect, ProbeDone done) {
  Transfer* t = Start("POST", "/2015-03-31/functions/" + function + "/invocations", payload);
  if (t == nullptr) {  // could not even start: fail on the next loop turn, not in this call
    Soon(multi_->loop(), [done = std::move(done)] {
      ProbeResult r;
      r.message = "could not start an HTTP request";
      done(std::move(r));
    });
    return;
  }
  t->finish = [expect, done = std::move(done)](Transfer& t, CURLcode rc) {
    ProbeResult r;
    double now = MonotonicMs();
    r.sample.start_ms = t.t0;
    r.sample.latency_ms = now - t.t0;
    r.sample.request_id = t.Header("x-amzn-RequestId");
    r.sample.start_kind = t.Header("X-Ephemera-Start");
    r.sample.environment_id = t.Header("X-Ephemera-Environment");
    long status = t.Status();
    if (rc != CURLE_OK) {
      r.message = std::string("request failed: ") + curl_easy_strerror(rc);
    } else if (status != 200) {
      r.message = "HTTP " + std::to_string(status) + ": " + Shorten(t.reply.body);
    } else if (!t.Header("X-Amz-Function-Error").empty()) {
      r.message = "function error: " + Shorten(t.reply.body);
    } else {
      r.sample.phases = ParseServerTiming(t.Header("Server-Timing"));
      const auto& p = r.sample.phases;
      bool created = p.count("create") != 0 && p.count("start") != 0;
      std::string kind = r.sample.start_kind;
      if (kind.empty()) kind = created ? "cold" : "warm";  // a daemon without the header
      bool right = kind == expect && p.count("total") != 0 && (expect != "cold" || created);
      if (!right) {
        r.kind = ProbeResult::Kind::kWrongClass;
        r.message = "not a " + expect + " start (X-Ephemera-Start: " + r.sample.start_kind +
                    ", Server-Timing: " + t.Header("Server-Timing") + ")";
      } else {
        r.kind = ProbeResult::Kind::kKept;
      }
      if (p.count("total") != 0) r.sample.phases["client"] = r.sample.latency_ms - p.at("total");
      if (p.count("handler") != 0)
        r.sample.phases["beyond_handler"] = r.sample.latency_ms - p.at("handler");
    }
    done(std::move(r));
  };
}

void EphemeraClient::Get(const std::string& path, Reply done) {
  Request("GET", path, "", std::move(done));
}

void EphemeraClient::Post(const std::string& path, std::string body, Reply done) {
  Request("POST", path, std::move(body), std::move(done));
}

void EphemeraClient::Delete(const std::string& path, Reply done) {
  Request("DELETE", path, "", std::move(done));
}

void EphemeraClient::PostFull(const std::string& path, std::string body, FullReply done) {
  Transfer* t = Start("POST", path, std::move(body));
  if (t == nullptr) {
    Soon(multi_->loop(), [done = std::move(done)] {
      HttpReply r;
      r.rc = CURLE_FAILED_INIT;
      done(std::move(r));
    });
    return;
  }
  t->finish = [done = std::move(done)](Transfer& t, CURLcode rc) {
    HttpReply r = std::move(t.reply);
    r.rc = rc;
    r.ms = MonotonicMs() - t.t0;
    r.status = rc == CURLE_OK ? static_cast<int>(t.Status()) : 0;
    done(std::move(r));
  };
}

void EphemeraClient::Request(const std::string& method, const std::string& path, std::string body,
                             Reply done) {
  Transfer* t = Start(method, path, std::move(body));
  if (t == nullptr) {
    Soon(multi_->loop(), [done = std::move(done)] { done(0, "could not start an HTTP request"); });
    return;
  }
  t->finish = [done = std::move(done)](Transfer& t, CURLcode rc) {
    done(rc == CURLE_OK ? static_cast<int>(t.Status()) : 0, std::move(t.reply.body));
  };
}

// ---- FloorHolders ----

FloorHolders::FloorHolders(uv_loop_t* loop, docker::DockerClient* docker,
                           docker::ContainerSpec spec)
    : loop_(loop), docker_(docker), spec_(std::move(spec)) {}

FloorHolders::~FloorHolders() {
  *alive_ = false;
}

void FloorHolders::Prepare(int count, std::function<void(Status)> done) {
  prepare_target_ = count;
  prepare_done_ = std::move(done);
  std::weak_ptr<bool> alive = alive_;
  Soon(loop_, [this, alive] {  // never from inside the call
    if (!alive.expired()) PrepareNext();
  });
}

void FloorHolders::PrepareNext() {
  if (!prepare_done_ || making_ > 0) return;
  if (removing_all_ || static_cast<int>(all_.size()) >= prepare_target_) {
    auto done = std::move(prepare_done_);
    prepare_done_ = nullptr;
    done(removing_all_ ? Cancelled("the benchmark is stopping") : Status::Ok());
    return;
  }
  // One at a time: each holder's create + start is then its own cost, not a share of a
  // burst.
  Make([this](Status s, std::string id) {
    if (!s.ok()) {
      auto done = std::move(prepare_done_);
      prepare_done_ = nullptr;
      if (done) done(s);
      return;
    }
    ready_.push_back(std::move(id));
    PrepareNext();
  });
}

// The same create -> start as runtime/sandbox/holders.cc HolderPool::Make.
void FloorHolders::Make(std::function<void(Status, std::string)> done) {
  ++making_;
  docker::ContainerSpec spec = spec_;
  spec.name = spec_.name + "-" + NewRequestId().substr(0, 8);
  double t0 = MonotonicMs();
  std::weak_ptr<bool> alive = alive_;
  auto failed = [this](const std::string& id, const Status& s,
                       const std::function<void(Status, std::string)>& done) {
    --making_;
    ++failed_;
    last_error_ = s.message();
    if (!id.empty()) Remove(id);
    done(Status(s.code(), "network namespace holder (" + spec_.image + "): " + s.message()), "");
    MaybeFinishRemoval();
  };
  docker_->CreateContainer(spec, [this, alive, t0, failed, done = std::move(done)](
                                     Status s, std::string id) mutable {
    if (alive.expired()) return;
    if (!s.ok()) return failed("", s, done);
    all_.insert(id);
    docker_->StartContainer(id, [this, alive, t0, failed, id, done = std::move(done)](Status s) {
      if (alive.expired()) return;
      if (!s.ok()) return failed(id, s, done);
      --making_;
      start_ms_.push_back(MonotonicMs() - t0);
      if (removing_all_) {
        Remove(id);
        done(Cancelled("the benchmark is stopping"), "");
        MaybeFinishRemoval();
        return;
      }
      done(Status::Ok(), id);
    });
  });
}

void FloorHolders::Acquire(std::function<void(Status, std::string)> done) {
  waiting_.push_back(std::move(done));
  if (serve_scheduled_) return;
  serve_scheduled_ = true;
  std::weak_ptr<bool> alive = alive_;
  Soon(loop_, [this, alive] {  // served on a later loop turn, never inside the call
    if (alive.expired()) return;
    serve_scheduled_ = false;
    Serve();
  });
}

void FloorHolders::Serve() {
  if (removing_all_) {
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& w : waiting) w(Cancelled("the benchmark is stopping"), "");
    return;
  }
  while (!waiting_.empty() && !ready_.empty()) {
    std::string id = std::move(ready_.back());
    ready_.pop_back();
    auto done = std::move(waiting_.front());
    waiting_.pop_front();
    ++lent_;
    done(Status::Ok(), std::move(id));
  }
  // None ready for the rest (more samples in flight than were prepared, or a holder was
  // removed): make one each. The sample's clock starts only once it has its holder.
  while (static_cast<int>(waiting_.size()) > on_demand_making_) {
    ++on_demand_making_;
    ++made_on_demand_;
    Make([this](Status s, std::string id) {
      --on_demand_making_;
      if (!s.ok()) {
        if (waiting_.empty()) return;
        auto done = std::move(waiting_.front());
        waiting_.pop_front();
        done(s, "");
        return;
      }
      ready_.push_back(std::move(id));
      Serve();
    });
  }
}

void FloorHolders::Release(const std::string& id, bool healthy) {
  if (all_.count(id) == 0) return;
  if (!healthy || removing_all_) {
    Remove(id);
    return;
  }
  ready_.push_back(id);
  if (!waiting_.empty() && !serve_scheduled_) {
    serve_scheduled_ = true;
    std::weak_ptr<bool> alive = alive_;
    Soon(loop_, [this, alive] {
      if (alive.expired()) return;
      serve_scheduled_ = false;
      Serve();
    });
  }
}

void FloorHolders::Remove(const std::string& id) {
  all_.erase(id);
  ready_.erase(std::remove(ready_.begin(), ready_.end(), id), ready_.end());
  ++removing_;
  std::weak_ptr<bool> alive = alive_;
  docker_->RemoveContainer(id, [this, alive](Status s) {
    if (alive.expired()) return;
    --removing_;
    if (!s.ok()) last_error_ = "remove: " + s.message();
    MaybeFinishRemoval();
  });
}

void FloorHolders::RemoveAll(std::function<void()> done) {
  removing_all_ = true;
  removed_ = std::move(done);
  std::vector<std::string> ids(all_.begin(), all_.end());
  for (const std::string& id : ids) Remove(id);
  std::weak_ptr<bool> alive = alive_;
  Soon(loop_, [this, alive] {  // waiting Acquire calls fail; `done` never inside the call
    if (alive.expired()) return;
    Serve();
    MaybeFinishRemoval();
  });
}

void FloorHolders::MaybeFinishRemoval() {
  if (!removed_ || removing_ > 0 || making_ > 0 || !all_.empty()) return;
  auto done = std::move(removed_);
  removed_ = nullptr;
  done();  // may destroy this: nothing after
}

// ---- RawFloor ----

struct RawFloor::Attempt {
  explicit Attempt(uv_loop_t* loop) : timer(loop) {}
  ~Attempt() {
    parked.reset();
    listener.reset();
    if (!sample_dir.empty()) {  // the socket (libuv unlinks it on close) and its folder
      std::error_code ec;
      std::filesystem::remove_all(sample_dir, ec);
    }
  }
  uint64_t serial = 0;
  std::unique_ptr<http::HttpServer> listener;
  std::shared_ptr<http::HttpExchange> parked;  // the /next we never answer
  std::string container_id;
  std::string holder_id;   // isolated: the namespace it joined, given back after removal
  std::string sample_dir;  // isolated: the folder bind-mounted at /run/ephemera
  double t0 = 0, t_created = 0, t_started = 0, t_next = 0;
  bool create_returned = false, start_requested = false, start_returned = false;
  bool measured = false, disposing = false;
  Timer timer;
  ProbeDone on_measured;
  std::function<void()> on_disposed;
};

RawFloor::RawFloor(uv_loop_t* loop, docker::DockerClient* docker, SpecBuilder build_spec,
                   uint64_t timeout_ms, FloorHolders* holders, std::string runtime_dir)
    : loop_(loop),
      docker_(docker),
      build_spec_(std::move(build_spec)),
      timeout_ms_(timeout_ms),
      holders_(holders),
      runtime_dir_(std::move(runtime_dir)) {}

RawFloor::~RawFloor() = default;

void RawFloor::Run(ProbeDone measured, std::function<void()> disposed) {
  auto a = std::make_shared<Attempt>(loop_);
  a->serial = ++serial_;
  a->on_measured = std::move(measured);
  a->on_disposed = std::move(disposed);
  attempts_.insert(a);
  std::weak_ptr<Attempt> weak = a;

  // The plain listener: the first GET /next marks the end of the sample.
  http::HttpServer::Options opts;
  opts.name = "bench-floor";
  a->listener = std::make_unique<http::HttpServer>(
      loop_,
      [this, weak](std::shared_ptr<http::HttpExchange> ex) {
        auto a = weak.lock();
        if (!a) return;
        const auto& req = ex->request();
        if (req.method == "GET" && req.path == "/2018-06-01/runtime/invocation/next") {
          if (a->measured) return;  // parked forever; the container is about to go
          a->t_next = MonotonicMs();
          a->parked = std::move(ex);
          ProbeResult r;
          r.kind = ProbeResult::Kind::kKept;
          r.sample.start_ms = a->t0;
          r.sample.latency_ms = a->t_next - a->t0;
          r.sample.phases["create"] = a->t_created - a->t0;
          if (a->start_returned && a->t_started <= a->t_next) {
            r.sample.phases["start"] = a->t_started - a->t_created;
            r.sample.phases["init"] = a->t_next - a->t_started;
          } else {  // the process asked before the start call returned, as the daemon counts it
            r.sample.phases["start"] = a->t_next - a->t_created;
            r.sample.phases["init"] = 0;
          }
          Finish(a, std::move(r));
          return;
        }
        ex->Reply(http::HttpResponse(404,
                                     "{\"errorMessage\":\"the benchmark's floor listener only "
                                     "takes the first /next\",\"errorType\":\"NotFound\"}",
                                     "application/json"));
      },
      opts);
  FloorEndpoint endpoint;
  Status s = OpenListener(a, &endpoint);
  if (!s.ok()) {
    a->timer.Start(0, [this, a, msg = s.message()] {  // never from inside Run()
      ProbeResult r;
      r.message = "cannot set up the sample: " + msg;
      a->create_returned = true;
      Finish(a, std::move(r));
    });
    return;
  }
  if (holders_ == nullptr) return Launch(a, std::move(endpoint));
  // Isolated: a holder first, off the timed path (the daemon's are made ahead too).
  holders_->Acquire(
      [this, weak, endpoint = std::move(endpoint)](Status s, std::string holder) mutable {
        auto a = weak.lock();
        if (!a) return;  // the floor is gone; RemoveAll takes the holder back
        if (!s.ok()) {
          ProbeResult r;
          r.message = s.message();
          a->create_returned = true;
          Finish(a, std::move(r));
          return;
        }
        a->holder_id = holder;
        endpoint.holder_id = std::move(holder);
        Launch(a, std::move(endpoint));
      });
}

// The sample's listener: 127.0.0.1:<ephemeral> on the host network; for an isolated
// function, runtime.sock in a folder of its own under runtime_dir_, as the daemon's
// environment does (runtime/sandbox/environment.cc OpenRuntimeApi).
Status RawFloor::OpenListener(const std::shared_ptr<Attempt>& a, FloorEndpoint* endpoint) {
  if (holders_ == nullptr) {
    Status s = a->listener->Listen("127.0.0.1", 0);
    if (s.ok()) endpoint->runtime_api_address = "127.0.0.1:" + std::to_string(a->listener->port());
    return s;
  }
  std::string dir = runtime_dir_ + "/floor-" + std::to_string(a->serial);
  if (::mkdir(dir.c_str(), 0755) != 0) {
    return Internal("cannot make the socket folder " + dir + ": " + std::strerror(errno));
  }
  a->sample_dir = dir;
  ::chmod(dir.c_str(), 0755);  // the container's user must reach the socket, whatever our umask
  std::string socket = dir + "/runtime.sock";
  if (Status s = a->listener->ListenUnix(socket, 0666); !s.ok()) return s;
  endpoint->runtime_api_address = "unix:" + socket;
  endpoint->runtime_dir = dir;
  return Status::Ok();
}

// create -> wait registered -> start -> the first /next: the timed part.
void RawFloor::Launch(const std::shared_ptr<Attempt>& a, FloorEndpoint endpoint) {
  std::weak_ptr<Attempt> weak = a;
  docker::ContainerSpec spec;
  if (Status s = build_spec_(endpoint, &spec); !s.ok()) {
    a->timer.Start(0, [this, a, msg = s.message()] {  // never from inside the caller
      ProbeResult r;
      r.message = "cannot set up the sample: " + msg;
      a->create_returned = true;
      Finish(a, std::move(r));
    });
    return;
  }
  a->timer.Start(timeout_ms_, [this, weak] {
    if (auto a = weak.lock()) {
      ProbeResult r;
      r.message = "no /next within " + std::to_string(timeout_ms_) + " ms of create";
      Finish(a, std::move(r));
    }
  });
  a->t0 = MonotonicMs();
  docker_->CreateContainer(spec, [this, weak](Status s, std::string id) {
    auto a = weak.lock();
    if (!a) return;
    a->create_returned = true;
    a->t_created = MonotonicMs();
    if (!s.ok()) {
      ProbeResult r;
      r.message = "create: " + s.message();
      Finish(a, std::move(r));
      return;
    }
    a->container_id = std::move(id);
    if (a->measured) {  // timed out meanwhile
      MaybeDispose(a);
      return;
    }
    docker_->WaitContainer(
        a->container_id,
        [this, weak](Status s) {
          auto a = weak.lock();
          if (!a) return;
          if (!s.ok()) {
            ProbeResult r;
            r.message = "wait: " + s.message();
            Finish(a, std::move(r));
            return;
          }
          if (a->measured) {
            MaybeDispose(a);
            return;
          }
          a->start_requested = true;
          docker_->StartContainer(a->container_id, [this, weak](Status s) {
            auto a = weak.lock();
            if (!a) return;
            a->start_returned = true;
            a->t_started = MonotonicMs();
            if (!s.ok()) {
              ProbeResult r;
              r.message = "start: " + s.message();
              Finish(a, std::move(r));
            }
            MaybeDispose(a);
          });
        },
        [this, weak](Status s, int code) {
          auto a = weak.lock();
          if (!a || a->measured) return;
          ProbeResult r;
          r.message = s.ok()
                          ? "container exited with code " + std::to_string(code) + " before /next"
                          : "wait: " + s.message();
          Finish(a, std::move(r));
        });
  });
}

void RawFloor::Finish(const std::shared_ptr<Attempt>& a, ProbeResult result) {
  if (a->measured) return;
  a->measured = true;
  a->timer.Stop();
  if (auto cb = std::move(a->on_measured)) cb(std::move(result));
  MaybeDispose(a);
}

void RawFloor::MaybeDispose(const std::shared_ptr<Attempt>& a) {
  if (a->disposing || !a->measured || !a->create_returned) return;
  if (a->start_requested && !a->start_returned) return;  // the start callback comes back here
  a->disposing = true;
  // The holder goes back once the container is gone (its namespace is then empty again);
  // removed instead when the container's removal failed.
  auto finish = [this, a](bool removed) {
    if (!a->holder_id.empty() && holders_ != nullptr) holders_->Release(a->holder_id, removed);
    auto cb = std::move(a->on_disposed);
    attempts_.erase(a);  // closes the listener; `a` itself lives until this lambda ends
    if (cb) cb();
  };
  if (a->container_id.empty()) {
    a->timer.Start(0, [finish] { finish(true); });  // never from inside whatever called us
    return;
  }
  docker_->RemoveContainer(a->container_id, [finish](Status s) { finish(s.ok()); });
}

// ---- DockerRun ----

struct DockerRun::Process {
  uv_process_t proc{};
  uv_pipe_t in{}, out{}, err{};
  uv_write_t write_req{};
  int open = 0;  // handles initialised and not yet closed
  std::string input, err_text;
  size_t out_bytes = 0;
  double t0 = 0, t_exit = 0;
  bool spawned = false, exited = false;
  int64_t exit_status = -1;
  int term_signal = 0;
  std::string spawn_error;
  ProbeDone done;
  std::weak_ptr<bool> owner_alive;

  static void OnClosed(uv_handle_t* h) {
    auto* p = static_cast<Process*>(h->data);
    if (--p->open > 0) return;
    p->Complete();
    delete p;
  }
  void Close(uv_handle_t* h) {
    if (!uv_is_closing(h)) uv_close(h, OnClosed);
  }
  void Complete() {
    ProbeResult r;
    r.sample.start_ms = t0;
    r.sample.latency_ms = (exited ? t_exit : MonotonicMs()) - t0;
    if (!spawned) {
      r.message = "cannot run the docker CLI: " + spawn_error;
    } else if (exit_status != 0 || term_signal != 0) {
      r.message = "docker run exited with " + std::to_string(exit_status) +
                  (term_signal != 0 ? " (signal " + std::to_string(term_signal) + ")" : "") + ": " +
                  Shorten(err_text);
    } else {
      r.kind = ProbeResult::Kind::kKept;
    }
    if (!owner_alive.expired() && done) done(std::move(r));
  }
};

DockerRun::DockerRun(uv_loop_t* loop, std::vector<std::string> argv, std::string input)
    : loop_(loop), argv_(std::move(argv)), input_(std::move(input)) {}

DockerRun::~DockerRun() {
  *alive_ = false;
}

void DockerRun::Run(ProbeDone done) {
  auto* p = new Process;
  p->done = std::move(done);
  p->owner_alive = alive_;
  p->input = input_;
  for (uv_pipe_t* pipe : {&p->in, &p->out, &p->err}) {
    uv_pipe_init(loop_, pipe, 0);
    pipe->data = p;
    ++p->open;
  }
  std::vector<char*> args;
  for (std::string& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
  stdio[0].data.stream = reinterpret_cast<uv_stream_t*>(&p->in);
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&p->out);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&p->err);
  uv_process_options_t o{};
  o.file = args[0];
  o.args = args.data();
  o.stdio = stdio;
  o.stdio_count = 3;
  o.exit_cb = [](uv_process_t* h, int64_t status, int signal) {
    auto* p = static_cast<Process*>(h->data);
    p->t_exit = MonotonicMs();
    p->exited = true;
    p->exit_status = status;
    p->term_signal = signal;
    p->Close(reinterpret_cast<uv_handle_t*>(h));
  };
  p->proc.data = p;
  p->t0 = MonotonicMs();
  int rc = uv_spawn(loop_, &p->proc, &o);
  ++p->open;  // the process handle is initialised even when the spawn fails
  if (rc < 0) {
    p->spawn_error = uv_strerror(rc);
    for (uv_handle_t* h :
         {reinterpret_cast<uv_handle_t*>(&p->proc), reinterpret_cast<uv_handle_t*>(&p->in),
          reinterpret_cast<uv_handle_t*>(&p->out), reinterpret_cast<uv_handle_t*>(&p->err)}) {
      p->Close(h);
    }
    return;
  }
  p->spawned = true;
  uv_buf_t buf = uv_buf_init(p->input.data(), static_cast<unsigned>(p->input.size()));
  p->write_req.data = p;
  int wrc = uv_write(&p->write_req, reinterpret_cast<uv_stream_t*>(&p->in), &buf, 1,
                     [](uv_write_t* req, int) {
                       auto* p = static_cast<Process*>(req->data);
                       p->Close(reinterpret_cast<uv_handle_t*>(&p->in));  // EOF for the child
                     });
  if (wrc < 0) p->Close(reinterpret_cast<uv_handle_t*>(&p->in));
  auto alloc = [](uv_handle_t*, size_t suggested, uv_buf_t* b) {
    b->base = static_cast<char*>(std::malloc(suggested));
    b->len = b->base != nullptr ? suggested : 0;
  };
  for (uv_pipe_t* pipe : {&p->out, &p->err}) {
    int r = uv_read_start(reinterpret_cast<uv_stream_t*>(pipe), alloc,
                          [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
                            auto* p = static_cast<Process*>(s->data);
                            if (n > 0) {
                              if (s == reinterpret_cast<uv_stream_t*>(&p->err)) {
                                if (p->err_text.size() < 4096)
                                  p->err_text.append(b->base, static_cast<size_t>(n));
                              } else {
                                p->out_bytes += static_cast<size_t>(n);
                              }
                            }
                            std::free(b->base);
                            if (n < 0) p->Close(reinterpret_cast<uv_handle_t*>(s));
                          });
    if (r < 0) p->Close(reinterpret_cast<uv_handle_t*>(pipe));
  }
}

// ---- settling ----

namespace {

struct Poller {
  explicit Poller(uv_loop_t* loop) : timer(loop) {}
  docker::DockerClient* docker = nullptr;
  std::string filter;
  std::string also_key, also_value;
  double deadline = 0;
  Timer timer;
  std::function<void(bool)> done;
};

void Poll(const std::shared_ptr<Poller>& p) {
  p->docker->ListContainerSummaries(
      p->filter, [p](Status s, std::vector<docker::ContainerSummary> rows) {
        size_t left = 0;
        for (const docker::ContainerSummary& row : rows) {
          auto it = row.labels.find(p->also_key);
          if (p->also_key.empty() || (it != row.labels.end() && it->second == p->also_value))
            ++left;
        }
        if (s.ok() && left == 0) {
          auto done = std::move(p->done);
          done(true);
          return;
        }
        if (MonotonicMs() > p->deadline) {
          auto done = std::move(p->done);
          done(false);
          return;
        }
        p->timer.Start(10, [p] { Poll(p); });
      });
}

}  // namespace

void WaitUntilNoContainers(uv_loop_t* loop, docker::DockerClient* docker, std::string label_filter,
                           uint64_t timeout_ms, std::function<void(bool settled)> done,
                           std::string also) {
  auto p = std::make_shared<Poller>(loop);
  p->docker = docker;
  p->filter = std::move(label_filter);
  if (size_t eq = also.find('='); eq != std::string::npos) {
    p->also_key = also.substr(0, eq);
    p->also_value = also.substr(eq + 1);
  }
  p->deadline = MonotonicMs() + static_cast<double>(timeout_ms);
  p->done = std::move(done);
  Poll(p);
}

void SetTransferOptions(CURL* easy, const std::string& url, curl_write_callback on_body,
                        curl_write_callback on_header, void* data) {
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 120000L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, data);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, data);
}

curl_slist* SetJsonPost(CURL* easy, const std::string& body, curl_slist* headers) {
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  return headers;
}

int SpawnLogged(uv_loop_t* loop, UvHandle<uv_process_t>* proc, std::vector<std::string>& argv,
                int log_fd, uv_exit_cb on_exit, void* data) {
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = log_fd;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = log_fd;
  uv_process_options_t opts{};
  opts.file = args[0];
  opts.args = args.data();
  opts.stdio = stdio;
  opts.stdio_count = 3;
  opts.exit_cb = on_exit;
  int rc = proc->Init(loop, uv_spawn, &opts);
  if (rc >= 0) proc->get()->data = data;
  return rc;
}

int DaemonProcess::Start(std::vector<std::string>& argv, int log_fd, ExitFn on_exit) {
  on_exit_ = std::move(on_exit);
  int rc = SpawnLogged(loop_, &proc_, argv, log_fd, &DaemonProcess::OnExit, this);
  if (rc < 0) return rc;
  pid_ = proc_.get()->pid;
  running_ = true;
  stopping_ = false;
  return rc;
}

void DaemonProcess::Stop(std::function<void()> on_killed, uint64_t kill_after_ms) {
  if (!running_) return;
  stopping_ = true;
  uv_process_kill(proc_.get(), SIGTERM);
  kill_timer_.Start(kill_after_ms, [this, on_killed = std::move(on_killed)] {
    if (!running_) return;
    if (on_killed) on_killed();
    uv_process_kill(proc_.get(), SIGKILL);
  });
}

void DaemonProcess::Kill() {
  if (running_) uv_process_kill(proc_.get(), SIGKILL);
}

void DaemonProcess::Close() {
  on_exit_ = nullptr;
  kill_timer_.Close();
  proc_.Close();
}

void DaemonProcess::OnExit(uv_process_t* p, int64_t status, int signal) {
  auto* self = static_cast<DaemonProcess*>(p->data);
  if (self == nullptr) return;
  self->running_ = false;
  self->kill_timer_.Stop();
  self->proc_.Close();
  if (auto fn = self->on_exit_) fn(status, signal);
}

std::string SelfDir() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return ".";
  exe[n] = '\0';
  std::string self = exe;
  return self.substr(0, self.rfind('/'));
}

namespace {

std::string UtcNow(const char* format) {
  time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &utc);
  return buf;
}

}  // namespace

std::string Timestamp() {
  return UtcNow("%Y%m%dT%H%M%SZ");
}

std::string IsoUtcNow() {
  return UtcNow("%Y-%m-%dT%H:%M:%SZ");
}

bool ParseNumber(const std::string& s, long min, long max, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || v < min || v > max) return false;
  *out = v;
  return true;
}

int UsageError(const char* tool, const std::string& problem) {
  std::fprintf(stderr, "%s: %s\nRun `%s --help` for usage.\n", tool, problem.c_str(), tool);
  return 2;
}

}  // namespace ephemera::bench
