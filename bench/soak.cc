// bench/soak.cc: ephemera-soak, the soak run of the isolation issue (bench/README.md "Soak").
//
// N invocations (default 10,000) against a daemon the tool starts itself, C at a time, over
// a seeded random mix of the functions in registry/functions.json, of warm and pool
// functions it creates through CreateFunction, and of injected faults (a container killed
// mid-invocation, a handler that crashes, a timeout, an out-of-memory kill, clients that
// disconnect, malformed requests). Every outcome is checked against what its kind must
// produce. Afterwards: the containers labelled with the daemon's instance
// (ephemera.daemon=<pid>) that no environment accounts for, once settled with the daemon
// running and once it stopped, and the daemon's RSS and open fds after warm-up and at the
// end.
//
// The stages, in order (they read top to bottom, docs/style.md rule 9):
//   Setup (registry) -> CheckImages -> MakePlan -> StartDaemon -> WaitHealthy
//   -> CreateFunctions -> warm-up invocations -> Drain -> Settle -> Measure "after warm-up"
//   -> the measured invocations -> Drain -> Settle -> Measure "end"
//   -> StopDaemon (SIGTERM) -> CountLeft (containers of its instance; removed) -> the loop
//   closes; then the run's Redis keys are deleted and results.json, report.md and the
//   summary are written.
//
// Reused from bench/: LoadGenerator and HttpPost (loadgen.h) for what curl cannot send
// (malformed HTTP, a client that closes mid-request), EphemeraClient (probes.h) for the
// control plane and /healthz, CollectEnvironment / CommandLine / LoadAverage
// (environment.h), Percentile (stats.h); sandbox::PickFreeLoopbackPort for its port. The
// daemon is started the way bench/runner.cc starts its own (that code is private to the
// runner). Invocations need their status, headers and body at once: EphemeraClient's
// PostFull.
//
// Thread: one thread, one libuv loop. Blocking calls: /proc reads on the loop (VmRSS, fd
// count), and before and after the loop the docker and redis CLIs (machine facts, the
// run's Redis keys). Depends on: ephemera_bench_lib (loadgen, probes, environment, stats),
// runtime/docker, runtime/json, registry, core, libcurl.
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bench/environment.h"
#include "bench/loadgen.h"
#include "bench/probes.h"
#include "bench/stats.h"
#include "registry/registry.h"
#include "runtime/core/clock.h"
#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"
#include "runtime/json/json.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::bench {
namespace {

// ---- What an invocation can be, and what it must produce ----

enum class Kind : int {
  kEcho,
  kEchoWarm,
  kEchoPool,
  kEchoExec,
  kShout,
  kRev,
  kWebapp,
  kLambdaCpp,
  kCrash,
  kTimeout,
  kKill,
  kOom,
  kDisconnectRunning,
  kDisconnectBody,
  kBadJson,
  kUnknownFunction,
  kBadHttp,
};
constexpr int kKindCount = 17;

struct KindInfo {
  const char* name;      // for --mix and the reports
  int weight;            // default share of the mix (the defaults add up to 100)
  const char* function;  // what it invokes
  const char* expect;    // what it must produce
};

constexpr std::array<KindInfo, kKindCount> kKinds = {{
    {"echo", 20, "echo", "200, the event back unchanged, X-Ephemera-Start: cold"},
    {"echo-warm", 15, "echo-warm",
     "200, the event back, X-Ephemera-Start: warm (cold only for its very first invocation)"},
    {"echo-pool", 8, "echo-pool",
     "200, the event back, X-Ephemera-Start: pool (or cold when none is ready), in an "
     "environment never used before"},
    {"echo-exec", 4, "echo-exec", "200, the event back"},
    {"shout", 4, "shout", "200, the event upper-cased"},
    {"rev", 4, "rev", "200, the event's bytes reversed"},
    {"webapp", 3, "webapp", "200, the event back (POSTed to the web service's /)"},
    {"lambda-cpp", 3, "lambda-cpp",
     "200, its answer carries this event and this invocation's request id"},
    {"crash", 6, "crash", "200, X-Amz-Function-Error: Unhandled, errorType Runtime.ExitError"},
    {"timeout", 4, "sleeper", "200, Unhandled, errorType Sandbox.Timedout (1 s timeout)"},
    {"kill", 4, "soak-victim-<slot>",
     "its container (found by label) gets docker kill 100-400 ms after it runs, while the "
     "handler sleeps: 200, Unhandled, errorType Runtime.ExitError"},
    {"oom", 3, "soak-hog",
     "asks the memory hog for 400 MiB under a 128 MB limit: 200, Unhandled, errorType "
     "Runtime.OutOfMemory"},
    {"disconnect-running", 3, "soak-slow",
     "the client closes its connection 50-500 ms after sending (the handler sleeps 2 s): no "
     "reply, the connection not closed by the daemon first"},
    {"disconnect-body", 3, "echo",
     "the client sends the head and part of the body, then closes after 20-200 ms: no reply"},
    {"bad-json", 6, "echo", "400, x-amzn-ErrorType: InvalidRequestContentException"},
    {"unknown-function", 6, "soak-missing-<n>",
     "404, x-amzn-ErrorType: ResourceNotFoundException, the message names the function"},
    {"bad-http", 4, "-",
     "bytes that are not a valid HTTP/1.1 request (a non-numeric Content-Length, a garbage "
     "request line, Content-Length and Transfer-Encoding together): 400"},
}};

const KindInfo& Info(Kind k) {
  return kKinds[static_cast<size_t>(k)];
}

// The functions the soak creates through CreateFunction.
constexpr char kWarmFn[] = "echo-warm";
constexpr char kPoolFn[] = "echo-pool";
constexpr char kSlowFn[] = "soak-slow";
constexpr char kHogFn[] = "soak-hog";
constexpr char kVictimPrefix[] = "soak-victim-";

// ---- Options ----

struct SoakOptions {
  int invocations = 10000;
  int concurrency = 4;
  uint64_t seed = 1;
  int warmup = -1;  // -1: a tenth of the invocations, at most 1000
  int pool_size = 2;
  int progress_every = 500;
  std::array<int, kKindCount> weights{};
  std::string out_dir, ephemera_bin, shim_path, registry_path, redis_url, docker_endpoint;
  std::string docker_cli = "/usr/bin/docker";
  std::string source_dir, command_line;
};

// ---- Small helpers ----

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// printf into a std::string of whatever length it needs.
std::string Fmt(const char* fmt, ...) {
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

std::string Shorten(std::string s, size_t max = 160) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

std::string Duration(double seconds) {
  int s = static_cast<int>(seconds + 0.5);
  if (s < 60) return std::to_string(s) + "s";
  return Fmt("%dm%02ds", s / 60, s % 60);
}

// A field of /proc/<pid>/status in its unit (kB for Vm*), or -1.
double ReadStatusField(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line, key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + key.size());
  }
  return -1;
}

// Entries of /proc/<pid>/fd, or -1.
int CountFds(int pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
  }
  ::closedir(d);
  return n;
}

double ChangePct(double before, double after) {
  return before > 0 ? (after - before) * 100.0 / before : 0;
}

// ---- What the run measured ----

struct KindStats {
  int run = 0, ok = 0, failed = 0;
  std::vector<double> ms;
  std::map<std::string, int> starts;  // X-Ephemera-Start values seen
  std::vector<std::string> examples;  // the first few failures
};

// The daemon and the engine at one moment.
struct Snapshot {
  bool taken = false;
  bool settled = false;  // the daemon was idle with every environment ready
  double t_s = 0;        // since the run started
  int done = 0;          // invocations finished by then
  double rss_kb = -1, hwm_kb = -1, threads = -1;
  int fds = -1;
  // Labelled ephemera.daemon=<pid>: environments' containers, and the network-namespace
  // holders of isolated environments (ephemera.holder=1: one per isolated environment plus
  // spares kept ready and reused, at most 8 idle; runtime/sandbox/holders.h).
  int containers = -1;
  int holders = -1;
  int environments = -1;  // /healthz
  int idle = -1, in_flight = -1, disposing = -1;
};

struct SoakResult {
  std::string started_at;
  double duration_s = 0;
  int planned = 0;
  int done = 0;
  int warmup = 0;
  bool interrupted = false;
  std::string endpoint, daemon_command;
  std::string network;  // of the registry's echo (the default when a function names none)
  int daemon_pid = 0;
  int64_t daemon_exit_status = -1;
  int daemon_exit_signal = 0;
  bool daemon_died = false;  // exited before it was asked to
  Fields environment;
  std::array<KindStats, kKindCount> kinds;
  std::array<int, kKindCount> weights{};
  std::vector<std::string> failures;  // the first examples over every kind
  int failed = 0;
  Snapshot after_warmup, end;
  std::vector<Snapshot> timeline;
  int left_after_stop = -1;               // containers of the instance once the daemon exited
  std::vector<std::string> left_details;  // name (function, state)
  std::vector<std::string> notes;
};

// ---- The run ----

// One invocation as planned: its kind and a random number for its delays and variants.
struct Planned {
  Kind kind = Kind::kEcho;
  int param = 0;  // 0..999
};

struct Invocation {
  int index = 0;
  int slot = 0;
  Kind kind = Kind::kEcho;
  int param = 0;
  std::string function, payload, token;
  double t0 = 0;
};

struct Health {
  int status = 0;
  int in_flight = -1, waiting = -1, environments = -1, idle = -1, disposing = -1;
};

class Soak {
 public:
  Soak(const SoakOptions& o, SoakResult* r) : o_(o), r_(r) {}

  Status Run() {
    if (uv_loop_init(&loop_) != 0) return Internal("uv_loop_init failed");
    t0_ = MonotonicMs();
    instance_ = std::to_string(::getpid());
    Status s = Setup();
    if (s.ok()) {
      WatchSignals();
      CheckImages();
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    // Everything that owns handles goes before the loop closes.
    sigint_.Close();
    sigterm_.Close();
    raw_.clear();
    invoke_.reset();
    control_.reset();
    docker_.reset();
    daemon_.Close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop_) != 0) r_->notes.push_back("the soak's loop did not close cleanly");
    if (daemon_log_fd_ >= 0) ::close(daemon_log_fd_);
    r_->duration_s = (MonotonicMs() - t0_) / 1000.0;
    if (!s.ok()) return s;
    return fatal_;
  }

  const std::string& instance() const { return instance_; }

 private:
  // ---- Setup: the registry's functions, the mix ----

  Status Setup() {
    std::unique_ptr<registry::Registry> reg;
    if (Status s = registry::Registry::Open(o_.registry_path, "", &reg); !s.ok()) return s;
    r_->weights = o_.weights;
    r_->started_at = IsoUtcNow();
    r_->planned = o_.invocations;
    // The registry functions the mix invokes by name; a missing one drops its kind.
    const std::pair<Kind, const char*> by_name[] = {
        {Kind::kEcho, "echo"},     {Kind::kEchoExec, "echo-exec"},
        {Kind::kShout, "shout"},   {Kind::kRev, "rev"},
        {Kind::kWebapp, "webapp"}, {Kind::kLambdaCpp, "lambda-cpp"},
        {Kind::kCrash, "crash"},   {Kind::kTimeout, "sleeper"},
        {Kind::kBadJson, "echo"},  {Kind::kDisconnectBody, "echo"},
    };
    for (const auto& [kind, name] : by_name) {
      if (reg->Find(name)) continue;
      Drop(kind, std::string("function ") + name + " is not in " + o_.registry_path);
    }
    echo_ = reg->Find("echo");
    if (echo_) r_->network = echo_->network;
    auto sleeper = reg->Find("sleeper");
    busybox_image_ = sleeper ? sleeper->image : "ephemera/busybox:latest";
    if (!echo_) {
      for (Kind k : {Kind::kEchoWarm, Kind::kEchoPool, Kind::kOom})
        Drop(k, "it is made from the registry's echo function, which is missing");
    }
    for (int i = 0; i < kKindCount; ++i) {
      const char* fn = kKinds[static_cast<size_t>(i)].function;
      if (r_->weights[static_cast<size_t>(i)] > 0 && fn[0] != '-' &&
          std::strchr(fn, '<') == nullptr && !IsCreated(fn)) {
        if (auto spec = reg->Find(fn)) {
          images_.insert(spec->image);
          registry_images_[fn] = spec->image;
        }
      }
    }
    if (Used(Kind::kEchoWarm) || Used(Kind::kEchoPool) || Used(Kind::kOom))
      images_.insert(echo_->image);
    if (Used(Kind::kKill) || Used(Kind::kDisconnectRunning)) images_.insert(busybox_image_);

    Status err;
    docker_ = docker::DockerClient::Create(
        &loop_,
        o_.docker_endpoint.empty() ? docker::DockerClient::DefaultSocketPath() : o_.docker_endpoint,
        &err);
    if (!docker_) return err;
    return Status::Ok();
  }

  static bool IsCreated(const std::string& fn) {
    return fn == kWarmFn || fn == kPoolFn || fn == kSlowFn || fn == kHogFn;
  }
  bool Used(Kind k) const { return r_->weights[static_cast<size_t>(k)] > 0; }
  void Drop(Kind k, const std::string& why) {
    if (!Used(k)) return;
    r_->weights[static_cast<size_t>(k)] = 0;
    r_->notes.push_back(std::string("kind ") + Info(k).name + " left out: " + why);
  }

  // ---- The images the mix needs; a missing one drops the kinds that use it ----

  void CheckImages() {
    if (images_.empty()) return MakePlan();
    auto left = std::make_shared<size_t>(images_.size());
    for (const std::string& image : images_) {
      docker_->InspectImage(image, [this, image, left](Status s, const docker::ImageConfig&) {
        if (!s.ok()) missing_images_.insert(image);
        if (--*left == 0) MakePlan();
      });
    }
  }

  // The kinds whose image is missing go, then the plan: N kinds drawn from the seeded
  // generator with the weights of the mix, so a seed always gives the same sequence.
  void MakePlan() {
    if (!missing_images_.empty()) {
      for (int i = 0; i < kKindCount; ++i) {
        Kind k = static_cast<Kind>(i);
        if (!Used(k)) continue;
        std::string image = ImageOf(k);
        if (missing_images_.count(image) != 0)
          Drop(k, "image " + image + " is missing (make -f Makefile.docker images)");
      }
    }
    int total = 0;
    for (int w : r_->weights) total += w;
    if (total == 0) return Fail("nothing to run: every kind of the mix has weight 0");
    std::mt19937_64 rng(o_.seed);
    std::discrete_distribution<int> pick(r_->weights.begin(), r_->weights.end());
    std::uniform_int_distribution<int> param(0, 999);
    plan_.resize(static_cast<size_t>(o_.invocations));
    for (Planned& p : plan_) {
      p.kind = static_cast<Kind>(pick(rng));
      p.param = param(rng);
    }
    r_->warmup =
        o_.warmup >= 0 ? std::min(o_.warmup, o_.invocations) : std::min(1000, o_.invocations / 10);
    slot_busy_.assign(static_cast<size_t>(o_.concurrency), false);
    StartDaemon();
  }

  std::string ImageOf(Kind k) const {
    switch (k) {
      case Kind::kEchoWarm:
      case Kind::kEchoPool:
      case Kind::kOom: return echo_ ? echo_->image : "";
      case Kind::kKill:
      case Kind::kDisconnectRunning: return busybox_image_;
      case Kind::kUnknownFunction:
      case Kind::kBadHttp: return "";
      default: break;
    }
    return registry_images_.count(Info(k).function) ? registry_images_.at(Info(k).function) : "";
  }

  // ---- Interruption: SIGINT/SIGTERM drain and report; a second one stops at once ----

  void WatchSignals() {
    for (auto [handle, signum] : {std::pair{&sigint_, SIGINT}, std::pair{&sigterm_, SIGTERM}}) {
      if (handle->Init(&loop_, uv_signal_init) < 0) continue;
      handle->get()->data = this;
      uv_signal_start(
          handle->get(),
          [](uv_signal_t* h, int sig) {
            if (auto* self = static_cast<Soak*>(h->data)) self->OnSignal(sig);
          },
          signum);
      uv_unref(reinterpret_cast<uv_handle_t*>(handle->get()));  // must not keep the loop alive
    }
  }

  void OnSignal(int sig) {
    if (r_->interrupted) {
      daemon_.Kill();
      std::fprintf(stderr,
                   "\nephemera-soak: stopped at once; containers labelled ephemera.daemon=%d may "
                   "be left (the next daemon's start-up removes them)\n",
                   daemon_pid_);
      std::_Exit(130);
    }
    r_->interrupted = true;
    r_->notes.push_back(Fmt("interrupted by signal %d after %d invocations", sig, r_->done));
    fatal_ = Cancelled(Fmt("interrupted by signal %d; the reports hold what was run", sig));
    Say("interrupted: finishing the invocations in flight, then measuring and stopping the "
        "daemon (signal again to stop at once)");
    if (phase_ == Phase::kSetup) return;  // BeginWarmup sees the flag
    limit_ = next_;
    Pump();
  }

  // ---- Our own daemon, on a free port, its log in the output directory ----

  void StartDaemon() {
    port_ = sandbox::PickFreeLoopbackPort();  // the daemon binds it right after
    if (port_ == 0) return Fail("no free port for the daemon");
    r_->endpoint = "http://127.0.0.1:" + std::to_string(port_);
    std::string log_path = o_.out_dir + "/daemon.log";
    daemon_log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (daemon_log_fd_ < 0) return Fail("cannot write " + log_path);
    // --state none: the functions created here live as long as this daemon. A Redis key
    // prefix of its own, so its invocation records never mix with another daemon's; they
    // are deleted at the end (DeleteRedisKeys).
    daemon_args_ = {
        o_.ephemera_bin, "serve",          "--listen",       "127.0.0.1:" + std::to_string(port_),
        "--registry",    o_.registry_path, "--shim",         o_.shim_path,
        "--state",       "none",           "--log-level",    "warn",
        "--redis",       o_.redis_url,     "--redis-prefix", RedisPrefix()};
    if (!o_.docker_endpoint.empty()) {
      daemon_args_.push_back("--docker");
      daemon_args_.push_back(o_.docker_endpoint);
    }
    for (const std::string& a : daemon_args_)
      r_->daemon_command += (r_->daemon_command.empty() ? "" : " ") + a;
    if (int rc =
            daemon_.Start(daemon_args_, daemon_log_fd_,
                          [this](int64_t status, int signal) { OnDaemonExit(status, signal); });
        rc < 0) {
      return Fail("cannot start " + o_.ephemera_bin + ": " + uv_strerror(rc));
    }
    daemon_pid_ = daemon_.pid();
    r_->daemon_pid = daemon_pid_;
    Say("daemon " + r_->daemon_command + " (pid " + std::to_string(daemon_pid_) + ", log " +
        log_path + ")");
    control_ = EphemeraClient::Create(&loop_, r_->endpoint);
    invoke_ = EphemeraClient::Create(&loop_, r_->endpoint, o_.concurrency + 8);
    if (!control_ || !invoke_) return Fail("cannot set up curl");
    health_deadline_ = MonotonicMs() + 15000;
    WaitHealthy();
  }

  std::string RedisPrefix() const { return "ephemera-soak-" + instance_ + ":"; }

  void WaitHealthy() {
    control_->Get("/healthz", [this](int status, std::string) {
      if (status == 200) return CreateFunctions();
      if (!daemon_.running()) return Fail("the daemon exited at start-up; see its log");
      if (MonotonicMs() > health_deadline_) {
        return Fail("the daemon is not healthy after 15 s (GET /healthz: " +
                    (status == 0 ? std::string("no answer") : std::to_string(status)) + "); see " +
                    o_.out_dir + "/daemon.log");
      }
      Later(50, [this] { WaitHealthy(); });
    });
  }

  // ---- The functions the mix needs beyond the registry, through CreateFunction ----

  std::string CreateBody(const std::string& name, const std::string& image, const char* mode,
                         const std::vector<std::string>& entrypoint, int timeout_s,
                         const std::map<std::string, std::string>& vars) const {
    json::Json body = json::NewObject();
    cJSON* b = body.get();
    cJSON_AddStringToObject(b, "FunctionName", name.c_str());
    cJSON_AddStringToObject(b, "PackageType", "Image");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "Code"), "ImageUri", image.c_str());
    cJSON_AddStringToObject(b, "Role", "arn:aws:iam::000000000000:role/ephemera-soak");
    cJSON_AddNumberToObject(b, "Timeout", timeout_s);
    cJSON_AddNumberToObject(b, "MemorySize", 128);
    cJSON_AddStringToObject(b, "Description", "created by ephemera-soak");
    if (!entrypoint.empty()) {
      json::AddStringArray(cJSON_AddObjectToObject(b, "ImageConfig"), "EntryPoint", entrypoint);
    }
    cJSON* v = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "Environment"), "Variables");
    cJSON_AddStringToObject(v, "EPHEMERA_MODE", mode);
    for (const auto& [k, val] : vars) cJSON_AddStringToObject(v, k.c_str(), val.c_str());
    return json::Print(b);
  }

  void CreateFunctions() {
    std::vector<std::pair<std::string, std::string>> todo;
    if (Used(Kind::kEchoWarm)) {
      // One environment at most, idle all run long: the same one serves every call, and the
      // environments after warm-up and at the end are the same set.
      todo.emplace_back(kWarmFn, CreateBody(kWarmFn, echo_->image, "native", {}, 3,
                                            {{"EPHEMERA_POLICY", "warm"},
                                             {"EPHEMERA_IDLE_TTL", "3600"},
                                             {"EPHEMERA_CONCURRENCY", "1"}}));
    }
    if (Used(Kind::kEchoPool)) {
      todo.emplace_back(kPoolFn,
                        CreateBody(kPoolFn, echo_->image, "native", {}, 3,
                                   {{"EPHEMERA_POLICY", "pool"},
                                    {"EPHEMERA_POOL_SIZE", std::to_string(o_.pool_size)}}));
    }
    if (Used(Kind::kOom)) {
      // functions/echo: --hog allocates and touches as many MiB as the event says.
      todo.emplace_back(kHogFn,
                        CreateBody(kHogFn, echo_->image, "native", {"/echo", "--hog"}, 10, {}));
    }
    if (Used(Kind::kDisconnectRunning)) {
      todo.emplace_back(kSlowFn, CreateBody(kSlowFn, busybox_image_, "exec",
                                            {"sh", "-c", "sleep 2; cat"}, 10, {}));
    }
    if (Used(Kind::kKill)) {
      // One per slot: a slot runs one invocation at a time, so the running container of
      // soak-victim-<slot> is the one of the kill in flight.
      for (int i = 0; i < o_.concurrency; ++i) {
        std::string name = kVictimPrefix + std::to_string(i);
        todo.emplace_back(
            name, CreateBody(name, busybox_image_, "exec", {"sh", "-c", "sleep 5; cat"}, 10, {}));
      }
    }
    CreateNext(std::make_shared<decltype(todo)>(std::move(todo)), 0);
  }

  void CreateNext(std::shared_ptr<std::vector<std::pair<std::string, std::string>>> todo,
                  size_t i) {
    if (stopping_) return;
    if (i == todo->size()) {
      Say(Fmt("%d invocations, %d at a time, seed %llu; warm-up %d; progress every %d",
              o_.invocations, o_.concurrency, static_cast<unsigned long long>(o_.seed), r_->warmup,
              o_.progress_every));
      return BeginWarmup();
    }
    const std::string name = (*todo)[i].first;
    control_->Post("/2015-03-31/functions", (*todo)[i].second,
                   [this, todo, i, name](int status, std::string reply) {
                     if (status != 201) {
                       return Fail("CreateFunction " + name + " failed (HTTP " +
                                   std::to_string(status) + "): " + Shorten(reply, 300));
                     }
                     if (name == kPoolFn) pool_created_ = true;
                     CreateNext(todo, i + 1);
                   });
  }

  // ---- The invocations: warm-up, then the measured ones ----

  void BeginWarmup() {
    phase_ = Phase::kWarmup;
    limit_ = r_->interrupted ? 0 : r_->warmup;
    last_line_ms_ = MonotonicMs();
    StartSampler();
    if (limit_ == 0) {
      phase_done_ = false;
      return Later(0, [this] { OnPhaseDone(); });
    }
    Pump();
  }

  void Pump() {
    while (in_flight_ < o_.concurrency && next_ < limit_ && !stopping_) {
      size_t slot = 0;
      while (slot_busy_[slot]) ++slot;
      slot_busy_[slot] = true;
      ++in_flight_;
      StartInvocation(next_++, static_cast<int>(slot));
    }
    if (in_flight_ == 0 && next_ >= limit_ && !phase_done_) {
      phase_done_ = true;
      Later(0, [this] { OnPhaseDone(); });
    }
  }

  void OnPhaseDone() {
    bool last = phase_ == Phase::kMain || r_->interrupted || aborted_ || next_ >= o_.invocations;
    if (!daemon_.running()) return CountLeft();
    if (!last) {
      Say(Fmt("warm-up done (%d invocations): settling, then measuring the daemon", r_->done));
      return Settle([this](Snapshot s) {
        r_->after_warmup = s;
        SayMeasure("after warm-up", s);
        phase_ = Phase::kMain;
        // Interrupted (or the daemon gone) while settling: nothing more is started.
        limit_ = r_->interrupted || stopping_ ? next_ : o_.invocations;
        phase_done_ = false;
        Pump();
      });
    }
    Say(Fmt("%d invocations done: settling, then measuring the daemon", r_->done));
    Settle([this](Snapshot s) {
      r_->end = s;
      SayMeasure("end", s);
      stopping_ = true;
      StopDaemon();
    });
  }

  void StartInvocation(int index, int slot) {
    Invocation inv;
    inv.index = index;
    inv.slot = slot;
    inv.kind = plan_[static_cast<size_t>(index)].kind;
    inv.param = plan_[static_cast<size_t>(index)].param;
    inv.token = Fmt("soak-%llu-%d", static_cast<unsigned long long>(o_.seed), index);
    inv.function = Info(inv.kind).function;
    inv.t0 = MonotonicMs();
    switch (inv.kind) {
      case Kind::kEcho:
      case Kind::kEchoWarm:
      case Kind::kEchoPool:
      case Kind::kEchoExec:
        inv.payload = "{\"soak\":\"" + inv.token + "\"}";
        return InvokeAndCheck(std::move(inv));
      case Kind::kShout:
      case Kind::kRev:
      case Kind::kWebapp:
      case Kind::kLambdaCpp:
        inv.payload = "\"" + inv.token + "\"";
        return InvokeAndCheck(std::move(inv));
      case Kind::kCrash:
      case Kind::kTimeout: inv.payload = "{}"; return InvokeAndCheck(std::move(inv));
      case Kind::kOom:
        inv.payload = "400";  // MiB, past the 128 MB limit
        return InvokeAndCheck(std::move(inv));
      case Kind::kBadJson:
        inv.payload = "{\"soak\":\"" + inv.token + "\",";  // cut short
        return InvokeAndCheck(std::move(inv));
      case Kind::kUnknownFunction:
        inv.function = "soak-missing-" + std::to_string(index);
        inv.payload = "{}";
        return InvokeAndCheck(std::move(inv));
      case Kind::kKill:
        inv.function = kVictimPrefix + std::to_string(slot);
        inv.payload = "{\"soak\":\"" + inv.token + "\"}";
        return StartKill(std::move(inv));
      case Kind::kDisconnectRunning:
      case Kind::kDisconnectBody:
      case Kind::kBadHttp: return StartRaw(std::move(inv));
    }
  }

  static std::string InvokePath(const std::string& fn) {
    return "/2015-03-31/functions/" + fn + "/invocations";
  }

  void InvokeAndCheck(Invocation inv) {
    std::string path = InvokePath(inv.function), payload = inv.payload;
    invoke_->PostFull(path, std::move(payload),
                      [this, inv = std::move(inv)](HttpReply r) { Finish(inv, Check(inv, r), r); });
  }

  // ---- The kill fault: its container, found by label, gets docker kill mid-invocation ----

  struct KillState {
    bool answered = false;
    bool kill_sent = false;
    std::string container, kill_error;
    std::set<std::string> before;  // the function's containers before this invocation
    double deadline = 0;
  };

  void StartKill(Invocation inv) {
    auto k = std::make_shared<KillState>();
    docker_->ListContainerSummaries(
        "ephemera.function=" + inv.function,
        [this, k, inv = std::move(inv)](Status, std::vector<docker::ContainerSummary> rows) {
          for (const auto& row : rows) k->before.insert(row.id);
          k->deadline = MonotonicMs() + 10000;
          std::string path = InvokePath(inv.function), payload = inv.payload;
          invoke_->PostFull(path, std::move(payload), [this, k, inv](HttpReply r) {
            k->answered = true;
            std::string problem;
            if (!k->kill_sent) {
              problem = k->container.empty()
                            ? "no running container of " + inv.function + " to kill was seen; "
                            : "the reply came before the kill; ";
              problem += Describe(r);
            } else {
              problem = Check(inv, r);
              if (!problem.empty() && !k->kill_error.empty())
                problem += " (docker kill: " + k->kill_error + ")";
            }
            Finish(inv, problem, r);
          });
          PollVictim(k, inv);
        });
  }

  void PollVictim(const std::shared_ptr<KillState>& k, const Invocation& inv) {
    if (k->answered || !k->container.empty() || closed_) return;
    docker_->ListContainerSummaries(
        "ephemera.function=" + inv.function,
        [this, k, inv](Status, std::vector<docker::ContainerSummary> rows) {
          if (k->answered) return;
          for (const auto& row : rows) {
            auto d = row.labels.find("ephemera.daemon");
            if (d == row.labels.end() || d->second != std::to_string(daemon_pid_)) continue;
            if (row.state != "running" || k->before.count(row.id) != 0) continue;
            k->container = row.id;
            // 100-400 ms after it runs: the event is taken at once (it is queued before the
            // container exists, docs/architecture.md), the handler sleeps 5 s.
            Later(static_cast<uint64_t>(100 + inv.param % 300), [this, k] {
              if (k->answered) return;
              k->kill_sent = true;
              docker_->KillContainer(k->container, [k](Status s) {
                if (!s.ok()) k->kill_error = s.message();
              });
            });
            return;
          }
          if (MonotonicMs() > k->deadline) return;  // the reply will say so
          Later(25, [this, k, inv] { PollVictim(k, inv); });
        });
  }

  // ---- Raw requests (loadgen.h): clients that disconnect, malformed HTTP ----

  void StartRaw(Invocation inv) {
    std::string host_port = "127.0.0.1:" + std::to_string(port_);
    LoadOptions lo;
    lo.port = port_;
    lo.connections = 1;
    lo.duration_ms = 0;  // until every reply is in (a batch) or Stop()
    lo.requests_per_connection = 1;
    uint64_t hold_ms = 0;
    if (inv.kind == Kind::kDisconnectRunning) {
      inv.function = kSlowFn;
      inv.payload = "{\"soak\":\"" + inv.token + "\"}";
      lo.request = HttpPost(host_port, InvokePath(inv.function), inv.payload);
      hold_ms = static_cast<uint64_t>(50 + inv.param % 450);
    } else if (inv.kind == Kind::kDisconnectBody) {
      std::string part = "{\"soak\":\"" + inv.token + "\",\"pad\":\"";
      lo.request = "POST " + InvokePath(inv.function) + " HTTP/1.1\r\nHost: " + host_port +
                   "\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n" + part;
      hold_ms = static_cast<uint64_t>(20 + inv.param % 180);
    } else {  // bad HTTP, three ways
      static const char* const kVariants[] = {
          "POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: %s\r\n"
          "Content-Length: soak\r\n\r\n",
          "\x01\x02 SOAK\x7f /%s HTTP/1.1\r\n\r\n",
          "POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: %s\r\n"
          "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
      };
      inv.function = "-";
      lo.request = Fmt(kVariants[inv.param % 3], host_port.c_str());
      lo.close_when_done = true;
      lo.expect_status = 400;
    }
    auto gen = std::make_unique<LoadGenerator>(&loop_, lo);
    LoadGenerator* g = gen.get();
    int index = inv.index;
    raw_[index] = std::move(gen);
    g->Run([this, inv, hold_ms](LoadResult res) {
      // Freed from a fresh loop turn, not inside its own callback (docs/style.md rule 4).
      Later(0, [this, index = inv.index] { raw_.erase(index); });
      std::string problem;
      if (hold_ms > 0) {
        if (res.sent != 1) {
          problem = "the request was not written before the disconnect";
        } else if (res.answered != 0) {
          problem = "the daemon answered before the client disconnected";
        } else if (res.errors != 0) {
          problem = "the daemon closed the connection first: " +
                    (res.messages.empty() ? std::string("?") : res.messages.front());
        }
      } else if (res.answered != 1 || res.errors != 0 || res.completed != 1) {
        problem = "malformed request variant " + std::to_string(inv.param % 3) +
                  ": expected a 400 reply, got " +
                  (res.messages.empty() ? std::string("no reply") : res.messages.front());
      }
      Finish(inv, problem, HttpReply{});
    });
    if (hold_ms > 0) {
      Later(hold_ms, [this, index] {
        auto it = raw_.find(index);
        if (it != raw_.end()) it->second->Stop();
      });
    }
  }

  // ---- Checking an outcome against its kind ----

  static std::string Describe(const HttpReply& r) {
    if (r.status == 0) return std::string("no answer: ") + curl_easy_strerror(r.rc);
    std::string s = "HTTP " + std::to_string(r.status);
    if (std::string e = r.Header("x-amzn-ErrorType"); !e.empty()) s += " " + e;
    if (std::string e = r.Header("X-Amz-Function-Error"); !e.empty()) s += " function error " + e;
    return s + ": " + Shorten(r.body);
  }

  // "" when the reply is what the kind must produce, else what is wrong.
  std::string Check(const Invocation& inv, const HttpReply& r) {
    const std::string expect = std::string("expected ") + Info(inv.kind).expect + ", got ";
    const std::string start = r.Header("X-Ephemera-Start");
    const std::string fn_error = r.Header("X-Amz-Function-Error");
    auto success = [&](const std::string& body_expected, bool exact) -> std::string {
      if (r.status != 200 || !fn_error.empty()) return expect + Describe(r);
      if (exact ? r.body != body_expected : r.body.find(body_expected) == std::string::npos) {
        return "wrong answer (another invocation's event?): expected " +
               Shorten(body_expected, 80) + ", got " + Shorten(r.body);
      }
      return CheckEnvironment(inv, r);
    };
    auto function_error = [&](const char* type) -> std::string {
      if (r.status != 200 || fn_error != "Unhandled") return expect + Describe(r);
      json::Json j = json::Parse(r.body);
      std::string got = j ? json::GetString(j.get(), "errorType").value_or("") : "";
      if (got != type) return expect + Describe(r);
      return CheckEnvironment(inv, r);
    };
    auto api_error = [&](int status, const char* type) -> std::string {
      if (r.status != status || r.Header("x-amzn-ErrorType") != type) return expect + Describe(r);
      return "";
    };
    switch (inv.kind) {
      case Kind::kEcho:
        if (std::string p = success(inv.payload, true); !p.empty()) return p;
        if (start != "cold") return "expected X-Ephemera-Start: cold, got '" + start + "'";
        return "";
      case Kind::kEchoWarm: {
        if (std::string p = success(inv.payload, true); !p.empty()) return p;
        bool first = !warm_seen_;
        warm_seen_ = true;
        if (start == "warm" || (start == "cold" && first)) return "";
        return "expected X-Ephemera-Start: warm (the one environment reused), got '" + start + "'";
      }
      case Kind::kEchoPool:
        if (std::string p = success(inv.payload, true); !p.empty()) return p;
        if (start != "pool" && start != "cold")
          return "expected X-Ephemera-Start: pool or cold, got '" + start + "'";
        return "";
      case Kind::kEchoExec:
      case Kind::kWebapp: return success(inv.payload, true);
      case Kind::kShout: {
        std::string up = inv.payload;
        for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return success(up, true);
      }
      case Kind::kRev: return success(std::string(inv.payload.rbegin(), inv.payload.rend()), true);
      case Kind::kLambdaCpp: {
        if (std::string p = success(inv.token, false); !p.empty()) return p;
        json::Json j = json::Parse(r.body);
        std::string id = j ? json::GetString(j.get(), "requestId").value_or("") : "";
        if (id.empty() || id != r.Header("x-amzn-RequestId")) {
          return "the runtime saw request id '" + id + "', the reply says '" +
                 r.Header("x-amzn-RequestId") + "'";
        }
        return "";
      }
      case Kind::kCrash:
      case Kind::kKill: return function_error("Runtime.ExitError");
      case Kind::kTimeout: return function_error("Sandbox.Timedout");
      case Kind::kOom: return function_error("Runtime.OutOfMemory");
      case Kind::kBadJson: return api_error(400, "InvalidRequestContentException");
      case Kind::kUnknownFunction:
        if (std::string p = api_error(404, "ResourceNotFoundException"); !p.empty()) return p;
        if (r.body.find(inv.function) == std::string::npos)
          return "the 404 does not name " + inv.function + ": " + Shorten(r.body);
        return "";
      case Kind::kDisconnectRunning:
      case Kind::kDisconnectBody:
      case Kind::kBadHttp: break;  // checked where they end (StartRaw)
    }
    return "";
  }

  // An environment serves one function only; a cold or pool start is in an environment
  // never used before, a warm one in an environment seen before.
  std::string CheckEnvironment(const Invocation& inv, const HttpReply& r) {
    std::string env = r.Header("X-Ephemera-Environment");
    std::string start = r.Header("X-Ephemera-Start");
    if (env.empty()) return "";
    auto [it, fresh] = env_function_.emplace(env, inv.function);
    if (it->second != inv.function) {
      return "environment " + env + " served " + it->second + " and then " + inv.function;
    }
    if ((start == "cold" || start == "pool") && !fresh)
      return "a " + start + " start in environment " + env + ", which was used before";
    if (start == "warm" && fresh) return "a warm start in environment " + env + ", never seen";
    return "";
  }

  // ---- One invocation ended ----

  void Finish(const Invocation& inv, const std::string& problem, const HttpReply& r) {
    KindStats& k = r_->kinds[static_cast<size_t>(inv.kind)];
    ++k.run;
    k.ms.push_back(MonotonicMs() - inv.t0);
    std::string start = r.Header("X-Ephemera-Start");
    if (!start.empty()) ++k.starts[start];
    if (problem.empty()) {
      ++k.ok;
    } else {
      ++k.failed;
      ++r_->failed;
      std::string line =
          Fmt("#%d %s (%s): ", inv.index, Info(inv.kind).name, inv.function.c_str()) + problem;
      if (k.examples.size() < 5) k.examples.push_back(line);
      if (r_->failures.size() < 20) r_->failures.push_back(line);
      if (r_->failed <= 3) Say("failure: " + line);
    }
    ++r_->done;
    slot_busy_[static_cast<size_t>(inv.slot)] = false;
    --in_flight_;
    if (r_->done % o_.progress_every == 0) ProgressLine();
    Later(0, [this] { Pump(); });
  }

  // ---- Progress on stderr: a line every --progress-every invocations or 10 s ----

  void ProgressLine() {
    last_line_ms_ = MonotonicMs();
    double elapsed = (last_line_ms_ - t0_) / 1000.0;
    double run_s = (last_line_ms_ - (first_invoke_ms_ > 0 ? first_invoke_ms_ : t0_)) / 1000.0;
    double rate = run_s > 0 ? r_->done / run_s : 0;
    double left = rate > 0 ? (o_.invocations - r_->done) / rate : 0;
    Say(
        Fmt("%d/%d (%.0f%%)%s, %.1f/s, %d failed, in flight %d, daemon RSS %.1f MB, %d fds, "
            "%d containers + %d holders, %s elapsed, ~%s left",
            r_->done, o_.invocations, 100.0 * r_->done / std::max(o_.invocations, 1),
            phase_ == Phase::kWarmup ? " warm-up" : "", rate, r_->failed, in_flight_,
            ReadStatusField(daemon_pid_, "VmRSS") / 1024.0, CountFds(daemon_pid_), last_containers_,
            last_holders_, Duration(elapsed).c_str(), Duration(left).c_str()));
  }

  // A snapshot every 5 s for the timeline (and a progress line when 10 s went by silent).
  void StartSampler() {
    first_invoke_ms_ = MonotonicMs();
    Sample();
  }

  void Sample() {
    if (stopping_ || !daemon_.running()) return;
    Snap([this](Snapshot s) {
      last_containers_ = s.containers;
      last_holders_ = s.holders;
      r_->timeline.push_back(s);
      if (MonotonicMs() - last_line_ms_ > 10000) ProgressLine();
      Later(5000, [this] { Sample(); });
    });
  }

  // ---- Settling and measuring ----

  void GetHealth(std::function<void(Health)> done) {
    if (closed_) return;  // after Close(): dropped, like every pending callback
    control_->Get("/healthz", [done = std::move(done)](int status, std::string body) {
      Health h;
      h.status = status;
      if (json::Json j = json::Parse(body)) {
        auto n = [&](const char* key) {
          return static_cast<int>(json::GetNumber(j.get(), key).value_or(-1));
        };
        h.in_flight = n("in_flight");
        h.waiting = n("waiting");
        h.environments = n("environments");
        h.idle = n("idle_environments");
        h.disposing = n("disposing");
      }
      done(h);
    });
  }

  // /healthz, the containers of the instance, and /proc of the daemon, at one moment.
  void Snap(std::function<void(Snapshot)> done) {
    if (closed_) return;
    GetHealth([this, done = std::move(done)](Health h) {
      if (closed_) return;
      docker_->ListContainerSummaries(
          "ephemera.daemon=" + std::to_string(daemon_pid_),
          [this, h, done](Status s, std::vector<docker::ContainerSummary> rows) {
            Snapshot snap;
            snap.taken = true;
            snap.t_s = (MonotonicMs() - t0_) / 1000.0;
            snap.done = r_->done;
            snap.rss_kb = ReadStatusField(daemon_pid_, "VmRSS");
            snap.hwm_kb = ReadStatusField(daemon_pid_, "VmHWM");
            snap.threads = ReadStatusField(daemon_pid_, "Threads");
            snap.fds = CountFds(daemon_pid_);
            if (s.ok()) {
              snap.containers = snap.holders = 0;
              for (const auto& row : rows)
                ++(row.labels.count("ephemera.holder") ? snap.holders : snap.containers);
            }
            snap.environments = h.environments;
            snap.idle = h.idle;
            snap.in_flight = h.in_flight;
            snap.disposing = h.disposing;
            done(snap);
          });
    });
  }

  // The environments that stay: the warm one (once used) and the full pool.
  int ExpectedEnvironments() const {
    return (warm_seen_ ? 1 : 0) + (pool_created_ ? o_.pool_size : 0);
  }

  // Waits (at most 60 s) until nothing runs or is being removed, every environment is idle,
  // the pool is full, and the engine holds exactly the daemon's environments; then 1 s
  // more, and the snapshot.
  void Settle(std::function<void(Snapshot)> next) {
    settle_deadline_ = MonotonicMs() + 60000;
    PollSettle(std::move(next));
  }

  void PollSettle(std::function<void(Snapshot)> next) {
    Snap([this, next = std::move(next)](Snapshot s) mutable {
      bool settled = s.in_flight == 0 && s.disposing == 0 && s.idle == s.environments &&
                     s.environments >= ExpectedEnvironments() && s.containers == s.environments;
      bool late = MonotonicMs() > settle_deadline_;
      if (!settled && !late && daemon_.running()) {
        return Later(100,
                     [this, next = std::move(next)]() mutable { PollSettle(std::move(next)); });
      }
      if (!settled) {
        r_->notes.push_back(
            Fmt("not settled after 60 s at %d invocations: in flight %d, disposing %d, %d of %d "
                "environments idle (%d expected), %d containers (and %d holders)",
                r_->done, s.in_flight, s.disposing, s.idle, s.environments, ExpectedEnvironments(),
                s.containers, s.holders));
      }
      Later(1000, [this, settled, next = std::move(next)] {
        Snap([settled, next](Snapshot s) {
          s.settled = settled && s.containers == s.environments && s.in_flight == 0;
          next(s);
        });
      });
    });
  }

  void SayMeasure(const char* what, const Snapshot& s) {
    Say(
        Fmt("%s: daemon RSS %.0f kB, %d fds; %d containers of its instance for %d environments, "
            "%d namespace holders (%s)",
            what, s.rss_kb, s.fds, s.containers, s.environments, s.holders,
            s.settled ? "settled" : "NOT settled"));
  }

  // ---- Stop the daemon, then count what it left ----

  void StopDaemon() {
    if (!daemon_.running()) return CountLeft();
    daemon_.Stop(
        [this] { r_->notes.push_back("the daemon did not stop within 30 s of SIGTERM; killed"); });
  }

  void OnDaemonExit(int64_t status, int signal) {
    r_->daemon_exit_status = status;
    r_->daemon_exit_signal = signal;
    if (!stopping_) {
      r_->daemon_died = true;
      r_->notes.push_back(
          Fmt("the daemon exited during the run (status %lld, signal %d) after "
              "%d invocations; see daemon.log",
              static_cast<long long>(status), signal, r_->done));
      fatal_ = Unavailable("the daemon exited during the run; see " + o_.out_dir + "/daemon.log");
      aborted_ = true;
      stopping_ = true;
      limit_ = next_;  // the requests in flight fail; then CountLeft (OnPhaseDone)
      if (plan_.empty() || in_flight_ == 0) Later(0, [this] { CountLeft(); });
      return;
    }
    if (status != 0 || signal != 0) {
      r_->notes.push_back(Fmt("the daemon exited with status %lld (signal %d) after SIGTERM",
                              static_cast<long long>(status), signal));
    }
    CountLeft();
  }

  // Containers labelled with the daemon's instance once it exited: it removes every one of
  // its containers on SIGTERM (docs/style.md rule 14), so any here leaked. The engine is
  // asked three times, 2 s apart (a create the engine was still running when the daemon
  // went would show up late), and every container found is counted once and removed. Ours
  // only: other daemons' containers are never touched.
  void CountLeft() {
    if (counted_) return;
    counted_ = true;
    if (daemon_pid_ == 0) return Close();
    r_->left_after_stop = 0;
    ListLeft(0);
  }

  void ListLeft(int round) {
    std::string filter = "ephemera.daemon=" + std::to_string(daemon_pid_);
    docker_->ListContainerSummaries(
        filter, [this, filter, round](Status s, std::vector<docker::ContainerSummary> rows) {
          if (!s.ok()) {
            r_->notes.push_back("could not list the containers left: " + s.message());
            if (round == 0) r_->left_after_stop = -1;
            return Close();
          }
          auto next = [this, round] {
            if (round == 2) return Close();
            Later(2000, [this, round] { ListLeft(round + 1); });
          };
          size_t fresh = 0;
          for (const auto& row : rows) fresh += left_seen_.count(row.id) == 0 ? 1 : 0;
          if (fresh > 0) {
            r_->notes.push_back(
                Fmt("%zu container(s) labelled %s were there %d s after the "
                    "daemon stopped; the soak removed them",
                    fresh, filter.c_str(), 2 * round));
          }
          if (rows.empty()) return next();
          auto left = std::make_shared<size_t>(rows.size());
          for (const auto& row : rows) {
            if (left_seen_.insert(row.id).second) {
              ++r_->left_after_stop;
              auto fn = row.labels.find("ephemera.function");
              r_->left_details.push_back(
                  row.id.substr(0, 12) + " (" +
                  (fn != row.labels.end() ? fn->second : std::string("holder")) + ", " + row.state +
                  ")");
            }
            docker_->RemoveContainer(row.id, [left, next](Status) {
              if (--*left == 0) next();
            });
          }
        });
  }

  void Close() {
    stopping_ = true;
    closed_ = true;
    raw_.clear();
    invoke_.reset();
    control_.reset();
    docker_.reset();  // the loop now runs out of handles and uv_run returns
  }

  // ---- helpers ----

  void Fail(const std::string& why) {
    fatal_ = Unavailable(why);
    stopping_ = true;
    if (daemon_.running() && !daemon_.stopping()) return StopDaemon();
    if (!daemon_.running()) Later(0, [this] { CountLeft(); });
  }

  void Say(const std::string& line) { std::fprintf(stderr, "ephemera-soak: %s\n", line.c_str()); }

  void Later(uint64_t ms, std::function<void()> fn) {
    auto t = std::make_shared<Timer>(&loop_);
    t->Start(ms, [t, fn = std::move(fn)] {
      t->Close();
      fn();
    });
  }

  enum class Phase { kSetup, kWarmup, kMain };

  const SoakOptions& o_;
  SoakResult* r_;
  uv_loop_t loop_{};
  double t0_ = 0;
  std::string instance_;
  std::shared_ptr<const registry::FunctionSpec> echo_;
  std::string busybox_image_;
  std::set<std::string> images_, missing_images_;
  std::map<std::string, std::string> registry_images_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<EphemeraClient> control_;
  std::unique_ptr<EphemeraClient> invoke_;
  std::map<int, std::unique_ptr<LoadGenerator>> raw_;  // by invocation index
  std::vector<Planned> plan_;
  Phase phase_ = Phase::kSetup;
  int next_ = 0, limit_ = 0, in_flight_ = 0;
  bool phase_done_ = false;
  std::vector<bool> slot_busy_;
  std::map<std::string, std::string> env_function_;  // environment id -> its function
  bool warm_seen_ = false, pool_created_ = false;
  double last_line_ms_ = 0, first_invoke_ms_ = 0, settle_deadline_ = 0, health_deadline_ = 0;
  int last_containers_ = -1, last_holders_ = -1;
  // The daemon.
  int port_ = 0;
  DaemonProcess daemon_{&loop_};
  std::vector<std::string> daemon_args_;
  int daemon_pid_ = 0;
  int daemon_log_fd_ = -1;
  bool stopping_ = false, aborted_ = false, counted_ = false;
  bool closed_ = false;              // the clients are gone: nothing may use them
  std::set<std::string> left_seen_;  // containers found after the daemon stopped
  UvHandle<uv_signal_t> sigint_, sigterm_;
  Status fatal_;
};

// ---- Reports ----

struct Verdicts {
  double rss_change = 0, fd_change = 0;
  bool measured = false;  // both snapshots were taken
  bool rss_ok = false, fd_ok = false, leaks_ok = false, outcomes_ok = false;
  int extra_after_warmup = -1, extra_end = -1;  // containers no environment accounts for
};

constexpr double kTargetPct = 10.0;

Verdicts Judge(const SoakResult& r) {
  Verdicts v;
  v.measured = r.after_warmup.taken && r.end.taken && r.after_warmup.rss_kb > 0 &&
               r.end.rss_kb > 0 && r.after_warmup.fds > 0 && r.end.fds > 0;
  if (v.measured) {
    v.rss_change = ChangePct(r.after_warmup.rss_kb, r.end.rss_kb);
    v.fd_change = ChangePct(r.after_warmup.fds, r.end.fds);
    v.rss_ok = v.rss_change <= kTargetPct;
    v.fd_ok = v.fd_change <= kTargetPct;
  }
  auto extra = [](const Snapshot& s) {
    return s.taken && s.containers >= 0 && s.environments >= 0 ? s.containers - s.environments : -1;
  };
  v.extra_after_warmup = extra(r.after_warmup);
  v.extra_end = extra(r.end);
  v.leaks_ok = r.left_after_stop == 0 && v.extra_end == 0 &&
               (v.extra_after_warmup == 0 || !r.after_warmup.taken);
  v.outcomes_ok = r.failed == 0 && r.done == r.planned;
  return v;
}

std::string Pct(double v) {
  return Fmt("%+.1f%%", v);
}

std::string KindLatency(const KindStats& k) {
  if (k.ms.empty()) return "-";
  return Fmt("%.0f / %.0f / %.0f", Percentile(k.ms, 0.5), Percentile(k.ms, 0.99),
             *std::max_element(k.ms.begin(), k.ms.end()));
}

std::string Starts(const KindStats& k) {
  std::string s;
  for (const auto& [kind, n] : k.starts)
    s += (s.empty() ? "" : ", ") + kind + " " + std::to_string(n);
  return s.empty() ? "-" : s;
}

void AddSnapshot(cJSON* parent, const char* key, const Snapshot& s) {
  cJSON* o = cJSON_AddObjectToObject(parent, key);
  cJSON_AddBoolToObject(o, "taken", s.taken);
  cJSON_AddBoolToObject(o, "settled", s.settled);
  cJSON_AddNumberToObject(o, "t_s", std::round(s.t_s * 10) / 10);
  cJSON_AddNumberToObject(o, "invocations_done", s.done);
  cJSON_AddNumberToObject(o, "rss_kb", s.rss_kb);
  cJSON_AddNumberToObject(o, "hwm_kb", s.hwm_kb);
  cJSON_AddNumberToObject(o, "threads", s.threads);
  cJSON_AddNumberToObject(o, "fds", s.fds);
  cJSON_AddNumberToObject(o, "containers", s.containers);
  cJSON_AddNumberToObject(o, "holders", s.holders);
  cJSON_AddNumberToObject(o, "environments", s.environments);
  cJSON_AddNumberToObject(o, "idle_environments", s.idle);
  cJSON_AddNumberToObject(o, "in_flight", s.in_flight);
  cJSON_AddNumberToObject(o, "disposing", s.disposing);
}

std::string ResultsJson(const SoakOptions& o, const SoakResult& r, const Verdicts& v) {
  json::Json root = json::NewObject();
  cJSON* j = root.get();
  cJSON_AddStringToObject(j, "tool", "ephemera-soak");
  cJSON* c = cJSON_AddObjectToObject(j, "config");
  cJSON_AddNumberToObject(c, "invocations", o.invocations);
  cJSON_AddNumberToObject(c, "concurrency", o.concurrency);
  cJSON_AddNumberToObject(c, "seed", static_cast<double>(o.seed));
  cJSON_AddNumberToObject(c, "warmup", r.warmup);
  cJSON_AddNumberToObject(c, "pool_size", o.pool_size);
  cJSON_AddStringToObject(c, "command_line", o.command_line.c_str());
  cJSON_AddStringToObject(c, "started_at", r.started_at.c_str());
  cJSON_AddNumberToObject(c, "duration_s", std::round(r.duration_s * 10) / 10);
  cJSON_AddStringToObject(c, "daemon_command", r.daemon_command.c_str());
  cJSON_AddNumberToObject(c, "daemon_pid", r.daemon_pid);
  cJSON_AddStringToObject(c, "network", r.network.c_str());
  cJSON* mix = cJSON_AddObjectToObject(c, "mix");
  for (int i = 0; i < kKindCount; ++i)
    cJSON_AddNumberToObject(mix, kKinds[static_cast<size_t>(i)].name,
                            r.weights[static_cast<size_t>(i)]);
  cJSON* env = cJSON_AddObjectToObject(j, "environment");
  for (const auto& [k, val] : r.environment) cJSON_AddStringToObject(env, k.c_str(), val.c_str());

  cJSON* sum = cJSON_AddObjectToObject(j, "summary");
  cJSON_AddNumberToObject(sum, "invocations_done", r.done);
  cJSON_AddNumberToObject(sum, "failures", r.failed);
  cJSON_AddBoolToObject(sum, "interrupted", r.interrupted);
  cJSON_AddBoolToObject(sum, "daemon_died", r.daemon_died);
  cJSON_AddNumberToObject(sum, "daemon_exit_status", static_cast<double>(r.daemon_exit_status));
  cJSON_AddNumberToObject(sum, "daemon_exit_signal", r.daemon_exit_signal);
  cJSON_AddNumberToObject(sum, "containers_left_after_stop", r.left_after_stop);
  cJSON_AddNumberToObject(sum, "containers_unaccounted_after_warmup", v.extra_after_warmup);
  cJSON_AddNumberToObject(sum, "containers_unaccounted_end", v.extra_end);
  if (v.measured) {
    cJSON_AddNumberToObject(sum, "rss_change_pct", std::round(v.rss_change * 100) / 100);
    cJSON_AddNumberToObject(sum, "fd_change_pct", std::round(v.fd_change * 100) / 100);
  }
  cJSON* t = cJSON_AddObjectToObject(j, "targets");
  cJSON_AddNumberToObject(t, "change_pct_max", kTargetPct);
  cJSON_AddBoolToObject(t, "no_leaked_containers", v.leaks_ok);
  cJSON_AddBoolToObject(t, "rss_within", v.measured && v.rss_ok);
  cJSON_AddBoolToObject(t, "fds_within", v.measured && v.fd_ok);
  cJSON_AddBoolToObject(t, "every_outcome_as_expected", v.outcomes_ok);

  cJSON* d = cJSON_AddObjectToObject(j, "daemon");
  AddSnapshot(d, "after_warmup", r.after_warmup);
  AddSnapshot(d, "end", r.end);
  json::AddStringArray(j, "containers_left_after_stop", r.left_details);

  cJSON* kinds = cJSON_AddObjectToObject(j, "kinds");
  for (int i = 0; i < kKindCount; ++i) {
    const KindStats& k = r.kinds[static_cast<size_t>(i)];
    cJSON* o2 = cJSON_AddObjectToObject(kinds, kKinds[static_cast<size_t>(i)].name);
    cJSON_AddStringToObject(o2, "function", kKinds[static_cast<size_t>(i)].function);
    cJSON_AddStringToObject(o2, "expect", kKinds[static_cast<size_t>(i)].expect);
    cJSON_AddNumberToObject(o2, "weight", r.weights[static_cast<size_t>(i)]);
    cJSON_AddNumberToObject(o2, "run", k.run);
    cJSON_AddNumberToObject(o2, "ok", k.ok);
    cJSON_AddNumberToObject(o2, "failed", k.failed);
    if (!k.ms.empty()) {
      cJSON* l = cJSON_AddObjectToObject(o2, "latency_ms");
      cJSON_AddNumberToObject(l, "p50", std::round(Percentile(k.ms, 0.5) * 10) / 10);
      cJSON_AddNumberToObject(l, "p99", std::round(Percentile(k.ms, 0.99) * 10) / 10);
      cJSON_AddNumberToObject(l, "max",
                              std::round(*std::max_element(k.ms.begin(), k.ms.end()) * 10) / 10);
    }
    cJSON* st = cJSON_AddObjectToObject(o2, "starts");
    for (const auto& [s, n] : k.starts) cJSON_AddNumberToObject(st, s.c_str(), n);
    json::AddStringArray(o2, "failure_examples", k.examples);
  }
  json::AddStringArray(j, "failure_examples", r.failures);
  cJSON* tl = cJSON_AddArrayToObject(j, "timeline");
  for (const Snapshot& s : r.timeline) {
    cJSON* row = cJSON_CreateObject();
    cJSON_AddNumberToObject(row, "t_s", std::round(s.t_s * 10) / 10);
    cJSON_AddNumberToObject(row, "done", s.done);
    cJSON_AddNumberToObject(row, "rss_kb", s.rss_kb);
    cJSON_AddNumberToObject(row, "fds", s.fds);
    cJSON_AddNumberToObject(row, "containers", s.containers);
    cJSON_AddNumberToObject(row, "holders", s.holders);
    cJSON_AddNumberToObject(row, "environments", s.environments);
    cJSON_AddNumberToObject(row, "in_flight", s.in_flight);
    cJSON_AddItemToArray(tl, row);
  }
  json::AddStringArray(j, "notes", r.notes);
  return json::Print(j) + "\n";
}

std::string Yes(bool ok) {
  return ok ? "yes" : "**no**";
}

std::string TextSummary(const SoakResult& r, const Verdicts& v) {
  std::string s;
  s += Fmt("invocations        %d of %d (%d warm-up), %d failed%s\n", r.done, r.planned, r.warmup,
           r.failed, r.interrupted ? " (interrupted)" : "");
  s +=
      Fmt("containers leaked  %d after the daemon stopped; %d (after warm-up) and %d (end) not "
          "accounted for by an environment while it ran, settled\n",
          r.left_after_stop, v.extra_after_warmup, v.extra_end);
  auto both = [&](const char* what, double a, double b, double pct, bool ok) {
    s += Fmt("%-18s %.0f after warm-up -> %.0f at the end: %s (%s)\n", what, a, b, Pct(pct).c_str(),
             ok ? "grew at most 10%" : "GREW MORE THAN 10%");
  };
  if (v.measured) {
    both("daemon RSS kB", r.after_warmup.rss_kb, r.end.rss_kb, v.rss_change, v.rss_ok);
    both("daemon open fds", r.after_warmup.fds, r.end.fds, v.fd_change, v.fd_ok);
  } else {
    s += "daemon RSS/fds     not measured at both points (see notes)\n";
  }
  s += Fmt("duration           %s\n", Duration(r.duration_s).c_str());
  return s;
}

std::string ReportMd(const SoakOptions& o, const SoakResult& r, const Verdicts& v) {
  std::string m = "# ephemera soak\n\n";
  m += Fmt("%s, %s. `%s`\n\n", r.started_at.c_str(), Duration(r.duration_s).c_str(),
           o.command_line.c_str());
  m += "## Summary\n\n| figure | value | target |\n|---|---|---|\n";
  m += Fmt("| invocations | %d of %d (the first %d were the warm-up) | all |\n", r.done, r.planned,
           r.warmup);
  m += Fmt("| outcomes not as expected | %d | 0: %s |\n", r.failed, Yes(r.failed == 0).c_str());
  m += Fmt("| containers left after the daemon stopped | %d | 0: %s |\n", r.left_after_stop,
           Yes(r.left_after_stop == 0).c_str());
  m +=
      Fmt("| containers not accounted for by an environment, settled, after warm-up / end | %d "
          "/ %d | 0: %s |\n",
          v.extra_after_warmup, v.extra_end,
          Yes(v.extra_end == 0 && v.extra_after_warmup <= 0).c_str());
  if (v.measured) {
    m +=
        Fmt("| daemon RSS (VmRSS) after warm-up -> end | %.0f kB -> %.0f kB (%s) | growth at most "
            "+10%%: "
            "%s |\n",
            r.after_warmup.rss_kb, r.end.rss_kb, Pct(v.rss_change).c_str(), Yes(v.rss_ok).c_str());
    m +=
        Fmt("| daemon open fds after warm-up -> end | %d -> %d (%s) | growth at most +10%%: %s |\n",
            r.after_warmup.fds, r.end.fds, Pct(v.fd_change).c_str(), Yes(v.fd_ok).c_str());
  } else {
    m += "| daemon RSS and fds | not measured at both points (see notes) | |\n";
  }
  m += Fmt("| daemon exit after SIGTERM | status %lld, signal %d | 0 |\n",
           static_cast<long long>(r.daemon_exit_status), r.daemon_exit_signal);
  m += "\n## How it ran\n\n";
  m +=
      Fmt("`%s` (pid %d), %d invocations %d at a time, seed %llu; the mix is drawn from the "
          "seed, so the same seed gives the same sequence (the order they finish in depends on "
          "timing). The daemon was measured twice, each time once it had settled (nothing in "
          "flight or being removed, every environment idle, the pool full, the engine holding "
          "exactly one container per environment) and 1 s more: after the %d warm-up "
          "invocations and at the end. A container \"not accounted for\" is one labelled "
          "ephemera.daemon=%d, not a namespace holder (ephemera.holder), beyond the daemon's own "
          "count of environments (/healthz). Holders are counted apart: isolated environments "
          "each hold one, and the daemon keeps spares ready and reuses them "
          "(runtime/sandbox/holders.h), so their number follows the peak of environments at "
          "once, not the number of invocations. Registry functions ran on network `%s`.\n\n",
          r.daemon_command.c_str(), r.daemon_pid, o.invocations, o.concurrency,
          static_cast<unsigned long long>(o.seed), r.warmup, r.daemon_pid, r.network.c_str());
  m += "| snapshot | settled | RSS kB | HWM kB | fds | threads | containers | environments | "
       "holders |\n|---|---|---|---|---|---|---|---|---|\n";
  using Row = std::pair<const char*, const Snapshot*>;
  for (const auto& [name, s] : {Row{"after warm-up", &r.after_warmup}, Row{"end", &r.end}}) {
    m += Fmt("| %s | %s | %.0f | %.0f | %d | %.0f | %d | %d | %d |\n", name,
             s->taken ? (s->settled ? "yes" : "no") : "not taken", s->rss_kb, s->hwm_kb, s->fds,
             s->threads, s->containers, s->environments, s->holders);
  }
  m += "\n## Outcomes by kind\n\n"
       "| kind | function | weight | run | as expected | not | latency ms p50 / p99 / max | "
       "starts | must produce |\n|---|---|---|---|---|---|---|---|---|\n";
  for (int i = 0; i < kKindCount; ++i) {
    const KindStats& k = r.kinds[static_cast<size_t>(i)];
    const KindInfo& info = kKinds[static_cast<size_t>(i)];
    m += Fmt("| %s | %s | %d | %d | %d | %d | %s | %s | ", info.name, info.function,
             r.weights[static_cast<size_t>(i)], k.run, k.ok, k.failed, KindLatency(k).c_str(),
             Starts(k).c_str());
    m += std::string(info.expect) + " |\n";
  }
  m += "\n## Failures\n\n";
  if (r.failures.empty()) {
    m += "None.\n";
  } else {
    m += Fmt("%d in all; the first %zu:\n\n", r.failed, r.failures.size());
    for (const std::string& f : r.failures) m += "- " + f + "\n";
  }
  if (!r.left_details.empty()) {
    m += "\n## Containers left after the daemon stopped\n\n";
    for (const std::string& d : r.left_details) m += "- " + d + "\n";
  }
  m += "\n## Timeline (a snapshot every 5 s; every row in results.json)\n\n"
       "| t s | done | RSS kB | fds | containers | holders | environments | in flight |\n"
       "|---|---|---|---|---|---|---|---|\n";
  size_t step = std::max<size_t>(1, (r.timeline.size() + 29) / 30);
  for (size_t i = 0; i < r.timeline.size(); i += step) {
    const Snapshot& s = r.timeline[i];
    m += Fmt("| %.0f | %d | %.0f | %d | %d | %d | %d | %d |\n", s.t_s, s.done, s.rss_kb, s.fds,
             s.containers, s.holders, s.environments, s.in_flight);
  }
  if (!r.notes.empty()) {
    m += "\n## Notes\n\n";
    for (const std::string& n : r.notes) m += "- " + n + "\n";
  }
  m += "\n## Machine\n\n";
  for (const auto& [k, val] : r.environment) m += "- " + k + ": " + val + "\n";
  return m;
}

bool WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

// ---- Command line ----

constexpr char kUsage[] =
    R"(ephemera-soak: a soak run of ephemera: many invocations over a random mix of functions
and injected faults against a daemon it starts itself, each outcome checked; then the
containers left behind and the daemon's memory and open files (bench/README.md "Soak").

Usage: ephemera-soak [options]

What it does:
  1. starts its own daemon: `ephemera serve` on a free 127.0.0.1 port, --state none, its own
     Redis key prefix (ephemera-soak-<pid>:), log in OUT/daemon.log;
  2. creates what the mix needs through CreateFunction: echo-warm (policy warm, concurrency 1,
     idle_ttl 3600), echo-pool (policy pool, --pool-size), soak-hog (the echo image's --hog,
     128 MB), soak-slow (busybox, sleeps 2 s), soak-victim-0..C-1 (busybox, sleeps 5 s);
  3. draws N invocation kinds from the seeded mix and runs them C at a time: the first W
     (the warm-up), then it waits until the daemon has settled and reads its VmRSS
     (/proc/PID/status) and open fds (/proc/PID/fd), then the rest, settles and reads again;
  4. checks every outcome against its kind (below) and prints a line every --progress-every
     invocations or 10 s, with the first failures as they happen;
  5. stops the daemon (SIGTERM) and counts the containers labelled ephemera.daemon=<its pid>,
     asking the engine three times over 4 s: the daemon removes all of its containers on
     SIGTERM, so every one left is a leak (they are removed; no other daemon's containers
     are touched); it also counts, each time it settled, the containers of that label
     beyond the daemon's own count of environments (namespace holders counted apart);
  6. deletes the daemon's Redis keys and writes OUT/results.json and OUT/report.md, and the
     summary on stdout.

Kinds (--mix NAME=WEIGHT,...; default weights in brackets, they add up to 100):
  echo [20]                cold invoke of echo: the event back, X-Ephemera-Start cold
  echo-warm [15]           the warm function: the event back, warm (cold only the first time)
  echo-pool [8]            the pool function: the event back, pool or cold, a fresh environment
  echo-exec, shout, rev [4 each], webapp, lambda-cpp [3 each]
                           registry functions: the event back / upper-cased / reversed /
                           echoed by the web service / seen by the runtime with its request id
  crash [6]                the crash function: Unhandled, Runtime.ExitError
  timeout [4]              sleeper (1 s timeout): Unhandled, Sandbox.Timedout
  kill [4]                 soak-victim-<slot>: its running container (found by label through
                           the Docker API) is killed 100-400 ms in: Unhandled, Runtime.ExitError
  oom [3]                  soak-hog asked for 400 MiB: Unhandled, Runtime.OutOfMemory
  disconnect-running [3]   the client closes 50-500 ms after sending (soak-slow): no reply
  disconnect-body [3]      the client sends part of the body and closes: no reply
  bad-json [6]             a body cut short: 400 InvalidRequestContentException
  unknown-function [6]     soak-missing-<n>: 404 ResourceNotFoundException naming it
  bad-http [4]             not HTTP/1.1 (bad Content-Length, garbage request line,
                           Content-Length with Transfer-Encoding): 400
Every answer that names an environment is also checked: an environment serves one function
only, a cold or pool start is in an environment never used before.

Options:
  --invocations N      invocations in all, warm-up included (default 10000)
  --concurrency C      invocations in flight at once (default 4)
  --seed S             seed of the mix and of the delays (default 1)
  --warmup W           invocations before the first measurement (default N/10, at most 1000)
  --mix LIST           weights by kind, e.g. kill=10,oom=0 (others keep their defaults)
  --only LIST          only these kinds, e.g. oom or oom,kill=3 (a kind without =WEIGHT
                       keeps its default weight); applied after --mix
  --pool-size N        size of echo-pool's pool (default 2)
  --progress-every N   a progress line every N invocations (default 500; also every 10 s)
  --out DIR            output directory (default bench/results/soak-<UTC timestamp>)
  --registry PATH      function manifest for the daemon (default $EPHEMERA_REGISTRY, else
                       registry/functions.json)
  --ephemera PATH      daemon binary (default: ephemera beside this binary)
  --shim PATH          the shim the daemon injects (default: ephemera-shim beside this binary)
  --redis URL          the daemon's Redis (default $REDIS_URL, else redis://127.0.0.1:6379)
  --docker ENDPOINT    Docker engine for the daemon and the soak (default DOCKER_HOST or
                       /var/run/docker.sock)
  --docker-cli PATH    docker CLI for the machine facts in the report (default /usr/bin/docker)
  --help

Ctrl-C (SIGINT) or SIGTERM: the invocations in flight finish, the daemon is measured and
stopped, and the reports hold what was run; a second signal stops at once.

Exit status: 0 when every invocation ran as expected, no container leaked and RSS and fds
grew by at most 10%; 3 when the run completed but one of those did not hold; 1 when it could
not run, was interrupted or the daemon died; 2 for usage errors.
)";

int Usage(const std::string& problem) {
  return UsageError("ephemera-soak", problem);
}

bool ParseMix(const std::string& list, std::array<int, kKindCount>* weights, std::string* bad) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string part =
        list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = part.find('=');
    long w = 0;
    int kind = -1;
    for (int i = 0; i < kKindCount && eq != std::string::npos; ++i) {
      if (part.substr(0, eq) == kKinds[static_cast<size_t>(i)].name) kind = i;
    }
    if (kind < 0 || !ParseNumber(part.substr(eq + 1), 0, 1000, &w)) {
      *bad = part;
      return false;
    }
    (*weights)[static_cast<size_t>(kind)] = static_cast<int>(w);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return true;
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  return ::getcwd(cwd, sizeof cwd) != nullptr ? std::string(cwd) + "/" + path : path;
}

// The daemon's keys in Redis (invocation records): gone once it stopped.
void DeleteRedisKeys(const std::string& url, const std::string& prefix, SoakResult* r) {
  std::string cmd = "command -v redis-cli >/dev/null && redis-cli -u '" + url +
                    "' --scan --pattern '" + prefix + "*' | xargs -r -n 100 redis-cli -u '" + url +
                    "' del >/dev/null 2>&1; redis-cli -u '" + url + "' --scan --pattern '" +
                    prefix + "*' 2>/dev/null | head -1";
  if (!CommandLine(cmd).empty()) {
    r->notes.push_back("keys with the prefix " + prefix +
                       " are left in Redis (redis-cli could not delete them)");
  }
}

}  // namespace
}  // namespace ephemera::bench

int main(int argc, char** argv) {
  using namespace ephemera::bench;
  std::signal(SIGPIPE, SIG_IGN);  // a peer that closes early must not kill us
  SoakOptions o;
  for (int i = 0; i < kKindCount; ++i)
    o.weights[static_cast<size_t>(i)] = kKinds[static_cast<size_t>(i)].weight;
  const char* reg = std::getenv("EPHEMERA_REGISTRY");
  o.registry_path = reg != nullptr && *reg != '\0' ? reg : "registry/functions.json";
  const char* redis = std::getenv("REDIS_URL");
  o.redis_url = redis != nullptr && *redis != '\0' ? redis : "redis://127.0.0.1:6379";
  std::string dir = SelfDir();
  o.ephemera_bin = dir + "/ephemera";
  o.shim_path = dir + "/ephemera-shim";
#ifdef EPHEMERA_SOURCE_DIR
  o.source_dir = EPHEMERA_SOURCE_DIR;
#endif
  std::string only;
  for (int i = 0; i < argc; ++i)
    o.command_line += (i ? " " : "") + std::string(i ? argv[i] : "ephemera-soak");

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return Usage("unknown option " + a + " (or it needs a value)");
    std::string v = argv[++i];
    long n = 0;
    if (a == "--invocations") {
      if (!ParseNumber(v, 1, 10000000, &n)) return Usage("--invocations must be 1..10000000");
      o.invocations = static_cast<int>(n);
    } else if (a == "--concurrency") {
      if (!ParseNumber(v, 1, 64, &n)) return Usage("--concurrency must be 1..64");
      o.concurrency = static_cast<int>(n);
    } else if (a == "--seed") {
      char* end = nullptr;
      unsigned long long s = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') return Usage("--seed must be a non-negative integer");
      o.seed = s;
    } else if (a == "--warmup") {
      if (!ParseNumber(v, 0, 10000000, &n)) return Usage("--warmup must be 0 or more");
      o.warmup = static_cast<int>(n);
    } else if (a == "--mix") {
      std::string bad;
      if (!ParseMix(v, &o.weights, &bad))
        return Usage("--mix: '" + bad + "' is not KIND=WEIGHT (0..1000) with a kind of --help");
    } else if (a == "--only") {
      only = v;
    } else if (a == "--pool-size") {
      if (!ParseNumber(v, 1, 100, &n)) return Usage("--pool-size must be 1..100");
      o.pool_size = static_cast<int>(n);
    } else if (a == "--progress-every") {
      if (!ParseNumber(v, 1, 10000000, &n)) return Usage("--progress-every must be 1 or more");
      o.progress_every = static_cast<int>(n);
    } else if (a == "--out") {
      o.out_dir = v;
    } else if (a == "--registry") {
      o.registry_path = v;
    } else if (a == "--ephemera") {
      o.ephemera_bin = v;
    } else if (a == "--shim") {
      o.shim_path = v;
    } else if (a == "--redis") {
      o.redis_url = v;
    } else if (a == "--docker") {
      o.docker_endpoint = v;
    } else if (a == "--docker-cli") {
      o.docker_cli = v;
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (!only.empty()) {
    // Every kind not named goes to 0; a named kind keeps its weight unless LIST sets one.
    std::array<int, kKindCount> kept{};
    std::string list;
    for (size_t pos = 0; pos <= only.size();) {
      size_t comma = only.find(',', pos);
      std::string part =
          only.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      std::string name = part.substr(0, part.find('='));
      int kind = -1;
      for (int k = 0; k < kKindCount; ++k) {
        if (name == kKinds[static_cast<size_t>(k)].name) kind = k;
      }
      if (kind < 0) return Usage("--only: '" + name + "' is not a kind of --help");
      kept[static_cast<size_t>(kind)] = o.weights[static_cast<size_t>(kind)];
      if (part.find('=') != std::string::npos) list += (list.empty() ? "" : ",") + part;
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    std::string bad;
    if (!list.empty() && !ParseMix(list, &kept, &bad))
      return Usage("--only: '" + bad + "' is not KIND=WEIGHT (0..1000)");
    o.weights = kept;
  }
  if (o.warmup > o.invocations) return Usage("--warmup must not exceed --invocations");
  o.shim_path = Absolute(o.shim_path);
  if (o.out_dir.empty()) o.out_dir = "bench/results/soak-" + Timestamp();
  if (std::system(("mkdir -p '" + o.out_dir + "'").c_str()) != 0) {
    std::fprintf(stderr, "ephemera-soak: cannot create %s\n", o.out_dir.c_str());
    return 1;
  }

  SoakResult r;
  r.environment = CollectEnvironment(o.docker_cli, "", o.source_dir);
  if (!o.source_dir.empty()) {
    // The daemon is built from the working tree, which may hold changes not committed yet.
    r.environment.emplace_back(
        "uncommitted_changes",
        CommandLine("git -C '" + o.source_dir +
                    "' status --porcelain --untracked-files=no -- runtime registry shim | wc -l") +
            " tracked files modified under runtime/, registry/, shim/");
  }
  Soak soak(o, &r);
  ephemera::Status s = soak.Run();
  DeleteRedisKeys(o.redis_url, "ephemera-soak-" + soak.instance() + ":", &r);
  r.environment.emplace_back("load_avg_end", LoadAverage());
  if (!s.ok()) std::fprintf(stderr, "ephemera-soak: %s\n", s.message().c_str());
  if (r.daemon_pid == 0) return 1;  // nothing ran
  Verdicts v = Judge(r);
  if (!WriteFile(o.out_dir + "/results.json", ResultsJson(o, r, v)) ||
      !WriteFile(o.out_dir + "/report.md", ReportMd(o, r, v))) {
    std::fprintf(stderr, "ephemera-soak: cannot write the reports in %s\n", o.out_dir.c_str());
    return 1;
  }
  std::fputs(TextSummary(r, v).c_str(), stdout);
  for (const std::string& f : r.failures) std::printf("  %s\n", f.c_str());
  for (const std::string& n : r.notes) std::printf("note: %s\n", n.c_str());
  std::printf("report: %s/report.md\n", o.out_dir.c_str());
  if (!s.ok()) return 1;
  return v.outcomes_ok && v.leaks_ok && v.measured && v.rss_ok && v.fd_ok ? 0 : 3;
}
