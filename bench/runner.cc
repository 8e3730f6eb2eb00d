// bench/runner.cc: the stages of one run (see runner.h), top to bottom.
#include "bench/runner.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "bench/environment.h"
#include "bench/loadgen.h"
#include "bench/probes.h"
#include "bench/progress.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/uv_handle.h"
#include "runtime/json/json.h"
#include "runtime/sandbox/container_spec.h"
#include "runtime/sandbox/holders.h"
#include "runtime/scheduler/scheduler.h"

namespace ephemera::bench {
namespace {

using sandbox::InjectsShim;
using sandbox::kShimMountPoint;

// The image of the queue-memory function: busybox, whose `sleep` is the slow handler.
constexpr char kQueueImage[] = "ephemera/busybox:latest";

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) {
    bool plain = !x.empty() && x.find_first_of(" \t\"'$\\{}*;&|<>") == std::string::npos;
    s += (s.empty() ? "" : " ") + (plain ? x : "'" + x + "'");
  }
  return s;
}

}  // namespace

bool FloorIsolated(const registry::FunctionSpec& fn) {
  // The registry gives a function that names no network registry::kDefaultNetwork, so
  // this follows that constant; an empty field (a spec built by hand) means it too.
  if (fn.network.empty()) return std::string_view(registry::kDefaultNetwork) == "isolated";
  return sandbox::IsIsolated(fn);
}

Status FloorSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const std::string& runtime_api_address, docker::ContainerSpec* out) {
  FloorEndpoint endpoint;
  endpoint.runtime_api_address = runtime_api_address;
  return FloorSpec(fn, image, shim_path, run_label, endpoint, out);
}

Status FloorSpec(const registry::FunctionSpec& spec, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const FloorEndpoint& endpoint, docker::ContainerSpec* out) {
  registry::FunctionSpec fn = spec;
  if (fn.network.empty()) fn.network = registry::kDefaultNetwork;
  sandbox::ContainerParams params;
  params.runtime_api_address = endpoint.runtime_api_address;
  if (sandbox::IsIsolated(fn)) {
    params.holder_id = endpoint.holder_id;
    params.runtime_dir = endpoint.runtime_dir;
  }
  params.environment_id = NewRequestId();
  params.shim_path = shim_path;
  params.instance_label = run_label;
  if (fn.mode == registry::ShimMode::kHttp && fn.http_port == 0) {
    params.http_port = sandbox::PickFreeLoopbackPort();
  }
  if (Status s = sandbox::BuildContainerSpec(fn, image, params, out); !s.ok()) return s;
  out->name = "ephemera-bench-" + fn.name + "-" + params.environment_id.substr(0, 8);
  out->labels = {{"ephemera.bench", run_label}, {"ephemera.bench.function", fn.name}};
  return Status::Ok();
}

// Keep in step with HolderPool::Make in runtime/sandbox/holders.cc (its spec is not
// exposed on its own); only the name and labels differ.
docker::ContainerSpec FloorHolderSpec(const std::string& shim_path, const std::string& run_label) {
  docker::ContainerSpec spec;
  spec.image = sandbox::HolderOptions().image;
  spec.name = "ephemera-bench-holder";  // FloorHolders appends a random suffix
  spec.labels = {{kHolderLabel, run_label}};
  spec.network_mode = "none";
  spec.entrypoint = {kShimMountPoint};
  spec.cmd = {"--hold"};
  spec.binds = {shim_path + ":" + kShimMountPoint + ":ro"};
  spec.cap_drop = {"ALL"};
  spec.security_opt = {"no-new-privileges"};
  spec.readonly_rootfs = true;
  spec.pids_limit = 8;
  spec.memory_bytes = 16 << 20;
  spec.user = sandbox::kDefaultUser;
  return spec;
}

std::vector<std::string> DockerRunArgv(const BenchOptions& o, const registry::FunctionSpec& fn,
                                       const std::string& run_label, std::string* why) {
  std::vector<std::string> argv = {o.docker_cli, "run", "--rm", "-i"};
  if (!FloorIsolated(fn)) {  // isolated: the engine's default network (runner.h)
    argv.push_back("--network");
    argv.push_back(fn.network.empty() ? registry::kDefaultNetwork : fn.network);
  }
  std::string memory = std::to_string(fn.memory_mb) + "m";
  argv.insert(argv.end(), {"--memory", memory, "--memory-swap", memory, "--label",
                           "ephemera.bench=" + run_label});
  std::vector<std::string> args;
  if (o.docker_run_args_set) {
    args = o.docker_run_args;
  } else if (fn.mode == registry::ShimMode::kExec && !fn.command.empty()) {
    argv.push_back("--entrypoint");
    argv.push_back(fn.command.front());
    args.assign(fn.command.begin() + 1, fn.command.end());
  } else if (fn.mode == registry::ShimMode::kExec) {
    args = fn.args;  // the image's own ENTRYPOINT reads the event on stdin
  } else if (fn.image.rfind("ephemera/echo:", 0) == 0) {
    args = {"--stdio"};  // the echo binary's one-shot mode: stdin to stdout, then exit
  } else {
    *why = "function " + fn.name + " (mode " + registry::ShimModeName(fn.mode) +
           ") has no one-shot command; give one with --docker-run-args";
    return {};
  }
  argv.push_back(fn.image);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

bool ColdStartFromAhead(const Sample& sample) {
  const auto& p = sample.phases;
  return sample.start_kind == "cold" && p.count("create") == 0 && p.count("start") != 0 &&
         p.count("total") != 0;
}

void PoolPollPlan::StartBlock(int originals) {
  originals_ = originals;
  takes_.clear();
  last_empty_ms_ = 0;
}

void PoolPollPlan::SawNoneIdle(double now, double delay) {
  last_empty_ms_ = delay <= kPollMs ? now : 0;
}

void PoolPollPlan::Take(double now) {
  if (originals_ > 0) {
    --originals_;
  } else if (!takes_.empty()) {
    double took = now - takes_.front();
    takes_.pop_front();
    if (last_empty_ms_ > 0 && now - last_empty_ms_ <= 10) {
      refill_min_ms_ = refill_min_ms_ > 0 ? std::min(refill_min_ms_, took) : took;
      refills_.push_back(took);
      basis_ms_ =
          refills_.size() >= kBasisSamples ? Percentile(refills_, kBasisQuantile) : refill_min_ms_;
    }
  }
  takes_.push_back(now);
  last_empty_ms_ = 0;
}

double PoolPollPlan::DelayMs(double now) const {
  if (takes_.empty() || basis_ms_ <= 0) return kPollMs;
  return std::max(kPollMs, takes_.front() + kLead * basis_ms_ - now);
}

bool ColdContainersSettled(const std::vector<docker::ContainerSummary>& rows,
                           const std::string& daemon, bool precreate, bool ahead_expected) {
  int created = 0, other = 0;
  for (const docker::ContainerSummary& row : rows) {
    if (!daemon.empty()) {
      auto it = row.labels.find("ephemera.daemon");
      if (it == row.labels.end() || it->second != daemon) continue;
    }
    ++(row.state == "created" ? created : other);
  }
  if (!precreate) return created + other == 0;
  return other == 0 && (ahead_expected ? created == 1 : created <= 1);
}

namespace {

class Runner {
 public:
  Runner(const BenchOptions& o, RunResult* r) : o_(o), r_(r), progress_(0) {}

  Status Run() {
    if (uv_loop_init(&loop_) != 0) return Status(StatusCode::kInternal, "uv_loop_init failed");
    run_t0_ = MonotonicMs();
    run_label_ = std::to_string(::getpid());
    Status s = Setup();
    if (s.ok()) {
      WatchSignals();
      StartDaemon();
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    // Everything that owns handles goes before the loop closes.
    sigint_.Close();
    sigterm_.Close();
    docker_run_.reset();
    floor_.reset();
    holders_.reset();
    client_.reset();
    docker_.reset();
    daemon_.Close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (!floor_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(floor_dir_, ec);
    }
    if (uv_loop_close(&loop_) != 0)
      r_->notes.push_back("the benchmark's loop did not close cleanly");
    if (daemon_log_fd_ >= 0) ::close(daemon_log_fd_);
    if (!s.ok()) return s;
    return fatal_;
  }

 private:
  // ---- Setup: registry, docker client, the series to run ----

  Status Setup() {
    std::unique_ptr<registry::Registry> reg;
    if (Status s = registry::Registry::Open(o_.registry_path, "", &reg); !s.ok()) return s;
    fn_ = reg->Find(o_.function);
    if (!fn_) {
      return NotFound("function " + o_.function + " is not in " + o_.registry_path +
                      " (the benchmark builds the raw floor's container from that manifest)");
    }
    RunConfig& c = r_->config;
    c.function = fn_->name;
    c.mode = registry::ShimModeName(fn_->mode);
    c.image = fn_->image;
    c.samples = o_.samples;
    c.warmups = o_.warmups;
    c.sweep_samples = o_.sweep_samples;
    c.sweep_levels = o_.sweep_levels;
    c.knee_levels = o_.knee_levels;
    c.throughput_levels = o_.throughput_levels;
    c.throughput_seconds = o_.throughput_seconds;
    c.max_starts = o_.max_starts;
    c.precreate = o_.precreate;
    c.pool_size = o_.warm_pool ? o_.pool_size : 0;
    // The daemon's start cap: --max-starts, else the scheduler's default.
    r_->pool_rate.max_starts =
        o_.max_starts > 0 ? o_.max_starts : scheduler::SchedulerOptions{}.max_starts_in_flight;
    c.quick = o_.quick;
    c.payload = o_.payload;
    c.started_at = IsoUtcNow();
    c.command_line = o_.command_line;
    c.own_daemon = o_.endpoint.empty();

    Status err;
    docker_ = docker::DockerClient::Create(
        &loop_,
        o_.docker_endpoint.empty() ? docker::DockerClient::DefaultSocketPath() : o_.docker_endpoint,
        &err);
    if (!docker_) return err;

    FloorArrangement& fa = r_->floor;
    fa.isolated = FloorIsolated(*fn_);
    fa.network = fn_->network.empty() ? registry::kDefaultNetwork : fn_->network;
    if (o_.docker_run) {
      std::string why;
      docker_run_argv_ = DockerRunArgv(o_, *fn_, run_label_, &why);
      fa.docker_run_network = fa.isolated ? "the engine's default, bridge (no --network)"
                                          : fa.network + " (--network " + fa.network + ")";
      if (docker_run_argv_.empty()) r_->notes.push_back("docker run series skipped: " + why);
    } else {
      r_->notes.push_back("docker run series skipped (--no-docker-run)");
    }
    order_ = {kEphemera, kRawFloor};
    if (!docker_run_argv_.empty()) order_.push_back(kDockerRun);
    if (o_.warm_pool) {
      order_.push_back(kWarm);
      order_.push_back(kPool);
      warm_fn_ = fn_->name + "-warm";
      pool_fn_ = fn_->name + "-pool";
    } else {
      r_->notes.push_back("warm and pool series skipped (--no-warm-pool)");
    }
    int sweep_total = 0;
    if (o_.sweep_samples > 0) {
      for (int level : SweepLevels()) {
        sweep_total += o_.sweep_samples * ((HasLevel(o_.sweep_levels, level) ? 1 : 0) + 1);
      }
    }
    progress_.set_total((o_.warmups + o_.samples) * static_cast<int>(order_.size()) + sweep_total +
                        (o_.warm_pool ? 2 * o_.pool_rate_samples : 0));  // pool + its floor
    return Status::Ok();
  }

  static bool HasLevel(const std::vector<int>& levels, int level) {
    return std::find(levels.begin(), levels.end(), level) != levels.end();
  }

  // The sweep's levels: ephemera's, and the floor's (those plus the knee's), ascending.
  std::vector<int> SweepLevels() const {
    std::vector<int> all = o_.sweep_levels;
    for (int l : o_.knee_levels) {
      if (!HasLevel(all, l)) all.push_back(l);
    }
    std::sort(all.begin(), all.end());
    return all;
  }

  // ---- Interruption: SIGINT/SIGTERM stop the run cleanly; a second one stops at once ----

  void WatchSignals() {
    for (auto [handle, signum] : {std::pair{&sigint_, SIGINT}, std::pair{&sigterm_, SIGTERM}}) {
      if (handle->Init(&loop_, uv_signal_init) < 0) continue;
      handle->get()->data = this;
      uv_signal_start(
          handle->get(),
          [](uv_signal_t* h, int sig) {
            if (auto* self = static_cast<Runner*>(h->data)) self->OnSignal(sig);
          },
          signum);
      // A signal watcher alone must not keep the loop (and so the run) alive.
      uv_unref(reinterpret_cast<uv_handle_t*>(handle->get()));
    }
  }

  void OnSignal(int sig) {
    if (interrupted_) {
      // Second signal: stop now. Our containers may stay; the next run removes them.
      daemon_.Kill();
      std::fprintf(stderr,
                   "\nephemera-bench: stopped at once; containers labelled "
                   "ephemera.bench=%s or %s=%s may be left\n",
                   run_label_.c_str(), kHolderLabel, run_label_.c_str());
      std::_Exit(130);
    }
    interrupted_ = true;
    aborted_ = true;
    fatal_ = Status(StatusCode::kCancelled, "interrupted by signal " + std::to_string(sig) +
                                                "; the reports hold what was measured");
    r_->notes.push_back("the run was interrupted (signal " + std::to_string(sig) +
                        "): the series hold fewer samples than asked");
    progress_.Say(
        "interrupted: finishing the samples in flight, then removing containers and "
        "stopping the daemon (signal again to stop at once)");
  }

  // ---- Stage 1: our own daemon, on a free port, its log in the output directory ----

  void StartDaemon() {
    if (!o_.endpoint.empty()) {
      r_->config.endpoint = o_.endpoint;
      Connect();
      return;
    }
    int port = sandbox::PickFreeLoopbackPort();  // the daemon binds it right after
    if (port == 0) return Fail("no free port for the daemon");
    r_->config.endpoint = "http://127.0.0.1:" + std::to_string(port);
    std::string log_path = o_.out_dir + "/daemon.log";
    daemon_log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (daemon_log_fd_ < 0) return Fail("cannot write " + log_path);
    daemon_args_ = {
        o_.ephemera_bin, "serve",          "--listen",    "127.0.0.1:" + std::to_string(port),
        "--registry",    o_.registry_path, "--shim",      o_.shim_path,
        "--state",       "none",           "--log-level", "warn"};
    // --state none: the functions the benchmark creates live only as long as its daemon.
    // A Redis key prefix of its own: its Event invocations (durable in Redis) and
    // invocation records never mix with another daemon's queue, and are deleted at the end
    // (RunBenchmark).
    daemon_args_.push_back("--redis-prefix");
    daemon_args_.push_back(RedisPrefix(run_label_));
    if (o_.max_starts > 0) {
      daemon_args_.push_back("--max-starts");
      daemon_args_.push_back(std::to_string(o_.max_starts));
    }
    // --precreate: the function's next container is created ahead of each cold start.
    if (o_.precreate) daemon_args_.push_back("--precreate");
    if (!o_.docker_endpoint.empty()) {
      daemon_args_.push_back("--docker");
      daemon_args_.push_back(o_.docker_endpoint);
    }
    if (int rc =
            daemon_.Start(daemon_args_, daemon_log_fd_,
                          [this](int64_t status, int signal) { OnDaemonExit(status, signal); });
        rc < 0) {
      return Fail("cannot start " + o_.ephemera_bin + ": " + uv_strerror(rc));
    }
    daemon_pid_ = daemon_.pid();
    progress_.Say("daemon " + Join(daemon_args_) + " (pid " + std::to_string(daemon_pid_) +
                  ", log " + log_path + ")");
    Connect();
  }

  void Connect() {
    client_ = EphemeraClient::Create(&loop_, r_->config.endpoint);
    if (!client_) return Fail("cannot set up curl");
    health_deadline_ = MonotonicMs() + 15000;
    WaitHealthy();
  }

  void WaitHealthy() {
    client_->Get("/healthz", [this](int status, std::string) {
      if (status == 200) return ResolveFunction();
      if (o_.endpoint.empty() && !daemon_.running()) {  // it exited: say why, do not wait
        return Fail("the daemon exited at start-up: " + DaemonLogTail());
      }
      if (MonotonicMs() > health_deadline_ || (!o_.endpoint.empty() && status != 0)) {
        return Fail("the daemon at " + r_->config.endpoint + " is not healthy (GET /healthz: " +
                    (status == 0 ? std::string("no answer") : std::to_string(status)) + ")" +
                    (o_.endpoint.empty() ? "; see " + o_.out_dir + "/daemon.log" : ""));
      }
      Later(50, [this] { WaitHealthy(); });
    });
  }

  // The end of the daemon's log, on one line, for error messages.
  std::string DaemonLogTail() const {
    std::string path = o_.out_dir + "/daemon.log", text;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
    for (char& c : text) {
      if (c == '\n') c = ' ';
    }
    return text.empty() ? "(nothing in " + path + ")" : text;
  }

  // ---- Stage 2: the image, the floor's spec, the probes ----

  void ResolveFunction() {
    docker_->InspectImage(fn_->image, [this](Status s, const docker::ImageConfig& image) {
      if (!s.ok()) return Fail("image of " + fn_->name + ": " + s.message());
      FloorArrangement& fa = r_->floor;
      if (fa.isolated) {
        // The sample folders, as the daemon's (runtime/cli/serve.cc): under
        // $EPHEMERA_RUNTIME_DIR, else /run/ephemera or /tmp, one folder for this run.
        const char* base = std::getenv("EPHEMERA_RUNTIME_DIR");
        floor_dir_ = std::string(base != nullptr && *base != '\0'
                                     ? base
                                     : (::access("/run", W_OK) == 0 ? "/run/ephemera" : "/tmp")) +
                     "/bench-" + run_label_;
        std::error_code ec;
        std::filesystem::create_directories(floor_dir_, ec);
        if (ec) return Fail("cannot create " + floor_dir_ + ": " + ec.message());
        ::chmod(floor_dir_.c_str(), 0755);
        fa.listener = "a unix socket per sample, " + floor_dir_ +
                      "/floor-<n>/runtime.sock, bind-mounted read-only at " +
                      sandbox::kRuntimeDirMountPoint;
      } else {
        fa.listener = "127.0.0.1:<a port per sample>";
      }
      docker::ContainerSpec spec;  // the first sample's, for the description
      FloorEndpoint example;
      example.runtime_api_address = "127.0.0.1:<port>";  // only described, never listened on
      example.holder_id = "<holder>";
      example.runtime_dir = floor_dir_ + "/floor-<n>";
      if (Status b = FloorSpec(*fn_, image, o_.shim_path, run_label_, example, &spec); !b.ok()) {
        return Fail("the raw floor's container for " + fn_->name + ": " + b.message());
      }
      floor_spec_text_ = spec.entrypoint.empty() ? "the image's ENTRYPOINT" : Join(spec.entrypoint);
      floor_spec_text_ += spec.cmd.empty() ? " with the image's CMD" : " " + Join(spec.cmd);
      if (fa.isolated) {
        holders_ = std::make_unique<FloorHolders>(&loop_, docker_.get(),
                                                  FloorHolderSpec(o_.shim_path, run_label_));
      }
      floor_ = std::make_unique<RawFloor>(
          &loop_, docker_.get(),
          [this, image](const FloorEndpoint& endpoint, docker::ContainerSpec* out) {
            return FloorSpec(*fn_, image, o_.shim_path, run_label_, endpoint, out);
          },
          o_.sample_timeout_ms, holders_.get(), floor_dir_);
      if (!docker_run_argv_.empty()) {
        docker_run_ = std::make_unique<DockerRun>(&loop_, docker_run_argv_, o_.payload);
      }
      DescribeSeries(spec);
      PrepareHolders();
    });
  }

  // ---- Stage 2a: an isolated floor's holders, made before anything is timed ----
  //
  // As many as the floor can have lent out at once. A sample's holder goes back once its
  // container is removed (only then is the namespace empty again), so the same ones serve
  // the whole run. The rounds need one: the next sample waits until the last container is
  // gone. The sweep's closed loop starts a worker's next sample as soon as the previous
  // /next arrived, while that container is still being removed, so at its top level C
  // (its own or the knee's) up to 2 x C are lent out. A sample that still finds none
  // ready gets one made before its clock starts (counted, and said in the report).

  void PrepareHolders() {
    if (!holders_) return CreateFunctions();
    int wanted = 1;
    if (o_.sweep_samples > 0) {
      for (int level : SweepLevels()) wanted = std::max(wanted, 2 * level);
    }
    progress_.Say("raw floor: " + std::to_string(wanted) + " network namespace holder(s) (" +
                  sandbox::HolderOptions().image + ") made ahead for the isolated function " +
                  fn_->name);
    holders_->Prepare(wanted, [this](Status s) {
      r_->floor.holders_prepared = holders_->made();
      if (!s.ok()) {
        return Fail("the raw floor's holders: " + s.message() +
                    " (build the image with make -f Makefile.docker images)");
      }
      CreateFunctions();
    });
  }

  // The holders' figures, for the reports (once they are all made).
  void RecordHolders() {
    if (!holders_) return;
    FloorArrangement& fa = r_->floor;
    fa.holders_made = holders_->made();
    fa.holders_on_demand = holders_->made_on_demand();
    fa.holders_failed = holders_->failed();
    fa.holder_uses = holders_->lent();
    fa.holder_start_ms = holders_->start_ms();
    fa.holder_error = holders_->last_error();
  }

  // ---- Stage 2b: the warm and pool functions, through the daemon's CreateFunction ----

  std::string CreateBody(const std::string& name, const std::string& policy) const {
    json::Json body = json::NewObject();
    cJSON* b = body.get();
    cJSON_AddStringToObject(b, "FunctionName", name.c_str());
    cJSON_AddStringToObject(b, "PackageType", "Image");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "Code"), "ImageUri", fn_->image.c_str());
    cJSON_AddStringToObject(b, "Role", "arn:aws:iam::000000000000:role/ephemera-bench");
    cJSON_AddNumberToObject(b, "Timeout", fn_->timeout_s);
    cJSON_AddNumberToObject(b, "MemorySize", fn_->memory_mb);
    cJSON_AddStringToObject(b, "Description", "created by ephemera-bench");
    if (!fn_->command.empty() || !fn_->args.empty() || !fn_->working_dir.empty()) {
      cJSON* ic = cJSON_AddObjectToObject(b, "ImageConfig");
      if (!fn_->command.empty()) {
        json::AddStringArray(ic, "EntryPoint", {fn_->command.begin(), fn_->command.begin() + 1});
        if (fn_->command.size() > 1)
          json::AddStringArray(ic, "Command", {fn_->command.begin() + 1, fn_->command.end()});
      } else if (!fn_->args.empty()) {
        json::AddStringArray(ic, "Command", fn_->args);
      }
      if (!fn_->working_dir.empty())
        cJSON_AddStringToObject(ic, "WorkingDirectory", fn_->working_dir.c_str());
    }
    cJSON* vars = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "Environment"), "Variables");
    for (const auto& [k, v] : fn_->environment) cJSON_AddStringToObject(vars, k.c_str(), v.c_str());
    cJSON_AddStringToObject(vars, "EPHEMERA_MODE", registry::ShimModeName(fn_->mode));
    cJSON_AddStringToObject(vars, "EPHEMERA_NETWORK", fn_->network.c_str());
    if (policy == "warm") {
      cJSON_AddStringToObject(vars, "EPHEMERA_POLICY", "warm");
      // Idle the whole run long: the rounds come back to it every few seconds, the
      // throughput stage at the end.
      cJSON_AddStringToObject(vars, "EPHEMERA_IDLE_TTL", "3600");
    } else if (policy == "pool") {
      cJSON_AddStringToObject(vars, "EPHEMERA_POLICY", "pool");
      cJSON_AddStringToObject(vars, "EPHEMERA_POOL_SIZE", std::to_string(o_.pool_size).c_str());
    } else {  // the queue-memory function: one at a time, a deep queue, a slow handler
      cJSON_AddStringToObject(vars, "EPHEMERA_CONCURRENCY", "1");
      cJSON_AddStringToObject(vars, "EPHEMERA_QUEUE_SIZE",
                              std::to_string(std::max(o_.queue_invocations, 1)).c_str());
      cJSON_AddStringToObject(vars, "EPHEMERA_QUEUE_TIMEOUT", "900");
    }
    return json::Print(b);
  }

  // Creates `name`; an existing function of that name (a daemon given with --endpoint) is
  // used as it is, with a note. `next(ok)`.
  void CreateFunction(const std::string& name, std::string body, std::function<void(bool)> next) {
    client_->Post("/2015-03-31/functions", std::move(body),
                  [this, name, next = std::move(next)](int status, std::string reply) {
                    if (status == 201) {
                      created_.push_back(name);
                      return next(true);
                    }
                    if (status == 409) {
                      r_->notes.push_back("function " + name +
                                          " existed already on the daemon and was used as it is");
                      return next(true);
                    }
                    r_->notes.push_back("CreateFunction " + name + " failed (HTTP " +
                                        std::to_string(status) + "): " + reply.substr(0, 300));
                    next(false);
                  });
  }

  void CreateFunctions() {
    if (!o_.warm_pool) return BeginRounds();
    CreateFunction(warm_fn_, CreateBody(warm_fn_, "warm"), [this](bool ok) {
      if (!ok) {
        DropWarmPool("the warm function could not be created");
        return BeginRounds();
      }
      CreateFunction(pool_fn_, CreateBody(pool_fn_, "pool"), [this](bool ok) {
        if (!ok) {
          DropWarmPool("the pool function could not be created");
          return BeginRounds();
        }
        pool_expected_ = o_.pool_size;
        BeginRounds();
      });
    });
  }

  void DropWarmPool(const std::string& why) {
    r_->notes.push_back("warm and pool series skipped: " + why);
    order_.erase(std::remove_if(order_.begin(), order_.end(),
                                [](const std::string& k) { return k == kWarm || k == kPool; }),
                 order_.end());
    r_->series.erase(
        std::remove_if(r_->series.begin(), r_->series.end(),
                       [](const Series& x) { return x.key == kWarm || x.key == kPool; }),
        r_->series.end());
    warm_fn_.clear();
    pool_fn_.clear();
  }

  void BeginRounds() {
    round_ = -o_.warmups;
    // The pool fills in the background after CreateFunction: start once it is full.
    Quiet([this] { RunRound(); });
  }

  // What one floor sample runs, in the function's network arrangement.
  std::string FloorWhat(const docker::ContainerSpec& spec) const {
    bool shim = InjectsShim(*fn_);
    auto env = [&spec](const std::string& name) {
      for (const std::string& e : spec.env) {
        if (e.rfind(name + "=", 0) == 0) return e;
      }
      return std::string();
    };
    std::string shim_bind;
    for (const std::string& b : spec.binds) {
      if (b.find(std::string(":") + kShimMountPoint) != std::string::npos) shim_bind = b;
    }
    std::string shim_text =
        shim ? ", the shim bind " + shim_bind + " and entrypoint " + kShimMountPoint
             : ", no shim (mode " + std::string(registry::ShimModeName(fn_->mode)) + ")";
    std::string head =
        "Docker API (libcurl on the same kind of loop as the daemon, unix socket, API "
        "1.41): POST /containers/create with the daemon's spec for " +
        fn_->name + " (image " + spec.image + ", ";
    std::string tail =
        ") -> POST /wait?condition=next-exit until its headers arrive -> POST /start -> ";
    std::string end =
        " Never answered; the container is then force-removed (not timed). Phases: create; "
        "start = wait registered + start call; init = start returned -> /next.";
    std::string memory = ", memory " + std::to_string(fn_->memory_mb) + " MB";
    if (!r_->floor.isolated) {
      return head + "network " + spec.network_mode + memory + ", the same environment" + shim_text +
             ", command " + floor_spec_text_ + tail +
             "the first GET /2018-06-01/runtime/invocation/next on a plain listener of the "
             "benchmark on 127.0.0.1 (" +
             env("AWS_LAMBDA_RUNTIME_API") + ", a port per sample)." + end;
    }
    return head + "network " + r_->floor.network +
           ": NetworkMode container:<holder>, the namespace of a holder made ahead and reused "
           "from sample to sample (image " +
           sandbox::HolderOptions().image + ", `" + kShimMountPoint +
           " --hold`, NetworkMode none, hardened as the daemon's; not timed; their count and "
           "cost are under \"The raw floor's network arrangement\")" +
           memory + ", the sample's own folder bind-mounted read-only at " +
           sandbox::kRuntimeDirMountPoint + ", the same environment (" +
           env("AWS_LAMBDA_RUNTIME_API") + ", " + env("EPHEMERA_RUNTIME_SOCKET") +
           (shim ? ", " + env("EPHEMERA_PROXY_LISTEN") : "") + ", " +
           env("EPHEMERA_INVOKE_ENDPOINT") + ")" + shim_text + ", command " + floor_spec_text_ +
           tail +
           "the first GET /2018-06-01/runtime/invocation/next arriving on the "
           "benchmark's own unix-socket listener runtime.sock in that folder (" +
           (shim ? "relayed there from 127.0.0.1:9001 inside by the shim"
                 : "reached by the function's runtime library through EPHEMERA_RUNTIME_SOCKET") +
           ")." + end;
  }

  void DescribeSeries(const docker::ContainerSpec& spec) {
    Series e;
    e.key = kEphemera;
    e.label = "ephemera cold";
    e.what =
        "POST " + r_->config.endpoint + "/2015-03-31/functions/" + fn_->name +
        "/invocations with body " + o_.payload +
        " over a keep-alive libcurl connection; time from sending to the whole reply; "
        "phases from its Server-Timing header (\"client\" = latency - total). " +
        (o_.precreate
             ? std::string("The daemon ran with --precreate: kept if HTTP 200, no "
                           "X-Amz-Function-Error, X-Ephemera-Start: cold and Server-Timing has "
                           "start (with create when no container created ahead was there, "
                           "without when the daemon started the one it had created ahead).")
             : std::string("Kept if HTTP 200, no X-Amz-Function-Error, and Server-Timing "
                           "has create and start (a cold start)."));
    Series f;
    f.key = kRawFloor;
    f.label = "raw Docker floor";
    f.what = FloorWhat(spec);
    r_->series.push_back(std::move(e));
    r_->series.push_back(std::move(f));
    if (!docker_run_argv_.empty()) {
      Series d;
      d.key = kDockerRun;
      d.label = "docker run --rm";
      d.what = "`" + Join(docker_run_argv_) + "` with " + o_.payload +
               " on stdin; time from spawning the CLI to its exit (the CLI waits for the "
               "container's removal). Kept if it exits 0. Network: " +
               r_->floor.docker_run_network +
               (r_->floor.isolated
                    ? ", not the function's isolated arrangement (a holder's namespace and a "
                      "socket folder serve a Runtime API, which this one-shot run does not use)"
                    : ", as the function's") +
               ".";
      r_->series.push_back(std::move(d));
    }
    if (o_.warm_pool) {
      Series w;
      w.key = kWarm;
      w.label = "ephemera warm";
      w.what = "POST .../functions/" + warm_fn_ +
               "/invocations (created by the benchmark: " + fn_->image + ", mode " +
               registry::ShimModeName(fn_->mode) + ", policy warm, idle_ttl 3600 s) with body " +
               o_.payload +
               " over the same keep-alive libcurl connection; its one environment is reused "
               "round after round. Kept if HTTP 200 and X-Ephemera-Start: warm. "
               "beyond_handler = latency - Server-Timing handler (everything that is not the "
               "function's own time: the client, the HTTP exchange, the daemon, the Runtime API "
               "hand-off).";
      r_->series.push_back(std::move(w));
      Series p;
      p.key = kPool;
      p.label = "ephemera pool";
      p.what = "POST .../functions/" + pool_fn_ +
               "/invocations (created by the benchmark: " + fn_->image + ", policy pool, size " +
               std::to_string(o_.pool_size) +
               "); every sample waits until the pool is full again, so it gets a container "
               "started ahead and never used. Kept if HTTP 200, X-Ephemera-Start: pool and an "
               "environment id not seen before; otherwise counted as wrong class (not fresh).";
      r_->series.push_back(std::move(p));
    }
  }

  // ---- Stage 3: interleaved rounds ----

  Series* SeriesOf(const std::string& key) {
    for (Series& s : r_->series) {
      if (s.key == key) return &s;
    }
    return nullptr;
  }

  bool NeedsMore(const std::string& key) {
    Series* s = SeriesOf(key);
    return s != nullptr && static_cast<int>(s->samples.size()) < o_.samples;
  }

  void RunRound() {
    // Rounds continue until every series has its kept samples, with a bounded number of
    // extra rounds for samples that were dropped.
    if (aborted_) return Cleanup();
    int max_rounds = o_.samples + std::max(5, o_.samples / 5);
    bool more = false;
    for (const std::string& k : order_) more = more || NeedsMore(k);
    if (round_ >= 0 && (!more || round_ >= max_rounds)) {
      if (more)
        r_->notes.push_back("stopped after " + std::to_string(round_) +
                            " rounds with fewer kept samples than asked (see rejects)");
      return StartPoolRate();
    }
    pos_ = 0;
    RunNextInRound();
  }

  // The series of round r run in the order rotated by r (A B C, B C A, C A B, ...), so every
  // series follows every other equally often: whatever the engine still does after the
  // previous sample (asynchronous cleanup) is spread evenly over the series.
  const std::string& OrderAt(size_t pos) const {
    size_t n = order_.size();
    size_t shift = static_cast<size_t>(round_ + 1000 * static_cast<int>(n)) % n;
    return order_[(pos + shift) % n];
  }

  void RunNextInRound() {
    while (pos_ < order_.size() && round_ >= 0 && !NeedsMore(OrderAt(pos_))) ++pos_;
    if (pos_ == order_.size()) {
      ++round_;
      return RunRound();
    }
    int position = static_cast<int>(pos_);
    std::string key = OrderAt(pos_++);
    bool warmup = round_ < 0;
    auto record = [this, key, warmup, position](ProbeResult r) {
      r.sample.position = position;
      Record(key, std::move(r), warmup);
    };
    if (key == kEphemera || key == kWarm || key == kPool) {
      const std::string& name = key == kEphemera ? fn_->name : key == kWarm ? warm_fn_ : pool_fn_;
      const char* expect = key == kEphemera ? "cold" : key == kWarm ? "warm" : "pool";
      client_->Invoke(name, o_.payload, expect, [this, key, record](ProbeResult r) {
        if (key == kEphemera) OnColdAnswer(r);
        if (key == kWarm && r.kind != ProbeResult::Kind::kFailed) warm_ready_ = true;
        if (key == kPool && r.kind == ProbeResult::Kind::kKept &&
            !pool_seen_.insert(r.sample.environment_id).second) {
          r.kind = ProbeResult::Kind::kWrongClass;
          r.message = "pool environment " + r.sample.environment_id + " was used before";
        }
        record(std::move(r));
        Quiet([this] { RunNextInRound(); });
      });
    } else if (key == kRawFloor) {
      floor_->Run(record, [this] { Quiet([this] { RunNextInRound(); }); });
    } else {
      docker_run_->Run([this, record](ProbeResult r) {
        record(std::move(r));
        Quiet([this] { RunNextInRound(); });
      });
    }
  }

  void Record(const std::string& key, ProbeResult r, bool warmup) {
    Series* s = SeriesOf(key);
    bool kept = !warmup && r.kind == ProbeResult::Kind::kKept;
    progress_.Tick((warmup ? "warm-up " : "") + s->label, r.sample.latency_ms, kept || warmup);
    if (warmup) {
      ++s->rejects.warmups_discarded;
      if (r.kind != ProbeResult::Kind::kKept) s->rejects.Note("warm-up: " + r.message);
      return;
    }
    if (r.kind == ProbeResult::Kind::kWrongClass) {
      ++s->rejects.wrong_class_dropped;
      s->rejects.Note(r.message);
      return;
    }
    if (r.kind == ProbeResult::Kind::kFailed) {
      ++s->rejects.failed;
      s->rejects.Note(r.message);
      return;
    }
    r.sample.index = round_;
    r.sample.start_ms -= run_t0_;
    s->samples.push_back(std::move(r.sample));
  }

  // Waits until no container matches `filter` (nothing to wait for when empty).
  void Settle(const std::string& filter, std::function<void()> next) {
    if (filter.empty()) return next();
    WaitUntilNoContainers(&loop_, docker_.get(), filter, o_.settle_timeout_ms,
                          [this, filter, next = std::move(next)](bool settled) {
                            if (!settled && unsettled_notes_++ < 3) {
                              r_->notes.push_back("containers labelled " + filter +
                                                  " were still there after " +
                                                  std::to_string(o_.settle_timeout_ms) + " ms");
                            }
                            next();
                          });
  }

  // The engine and the daemon are quiet: no container of ours (floor, docker run) is left,
  // no cold container of the benchmarked function, and the daemon has nothing in flight or
  // being disposed, with every environment it should keep idle (the warm one once made, the
  // pool full). Between interleaved samples, so none pays for another's aftermath.
  void Quiet(std::function<void()> next) {
    Settle("ephemera.bench=" + run_label_, [this, next = std::move(next)]() mutable {
      SettleCold([this, next = std::move(next)]() mutable {
        quiet_deadline_ = MonotonicMs() + static_cast<double>(o_.settle_timeout_ms);
        PollQuiet(std::move(next));
      });
    });
  }

  // An answer of the cold function. With --precreate: a cold start that skipped the create
  // is the class measured (runner.h ColdStartFromAhead), and the daemon is creating the next
  // container ahead when the start was answered, so settling waits for it. Without
  // --precreate, nothing changes.
  void OnColdAnswer(ProbeResult& r) {
    if (!o_.precreate) return;
    if (r.kind == ProbeResult::Kind::kWrongClass && ColdStartFromAhead(r.sample)) {
      r.kind = ProbeResult::Kind::kKept;
      r.message.clear();
    }
    // After a failure the daemon may or may not have made one: settle for either.
    ahead_expected_ = r.kind != ProbeResult::Kind::kFailed && r.sample.start_kind == "cold";
  }

  // No container of the cold function (of our daemon, when it is ours) is left; with
  // --precreate, but for the one the daemon created ahead (runner.h ColdContainersSettled).
  void SettleCold(std::function<void()> next) {
    std::string filter = "ephemera.function=" + fn_->name;
    if (o_.precreate) {
      settle_cold_deadline_ = MonotonicMs() + static_cast<double>(o_.settle_timeout_ms);
      return PollColdAhead(std::move(next));
    }
    std::string also = o_.endpoint.empty() ? "ephemera.daemon=" + std::to_string(daemon_pid_) : "";
    WaitUntilNoContainers(
        &loop_, docker_.get(), filter, o_.settle_timeout_ms,
        [this, filter, next = std::move(next)](bool settled) {
          if (!settled && unsettled_notes_++ < 3) {
            r_->notes.push_back("containers labelled " + filter + " were still there after " +
                                std::to_string(o_.settle_timeout_ms) + " ms");
          }
          next();
        },
        also);
  }

  void PollColdAhead(std::function<void()> next) {
    std::string filter = "ephemera.function=" + fn_->name;
    docker_->ListContainerSummaries(
        filter, [this, filter, next = std::move(next)](
                    Status s, std::vector<docker::ContainerSummary> rows) mutable {
          // --precreate is refused with --endpoint: the daemon is ours.
          std::string daemon = std::to_string(daemon_pid_);
          if (s.ok() && ColdContainersSettled(rows, daemon, true, ahead_expected_)) return next();
          if (MonotonicMs() > settle_cold_deadline_) {
            if (unsettled_notes_++ < 3) {
              int created = 0, other = 0;
              for (const docker::ContainerSummary& row : rows) {
                auto it = row.labels.find("ephemera.daemon");
                if (it == row.labels.end() || it->second != daemon) continue;
                ++(row.state == "created" ? created : other);
              }
              r_->notes.push_back("containers labelled " + filter + " were not settled after " +
                                  std::to_string(o_.settle_timeout_ms) +
                                  " ms (--precreate: " + std::to_string(created) + " created, " +
                                  std::to_string(other) + " in another state; wanted " +
                                  (ahead_expected_ ? "exactly" : "at most") +
                                  " 1 created and no other" +
                                  (s.ok() ? "" : "; list: " + s.message()) + ")");
            }
            return next();
          }
          Later(10, [this, next = std::move(next)]() mutable { PollColdAhead(std::move(next)); });
        });
  }

  struct Health {
    int status = 0;
    double in_flight = 0, waiting = 0, environments = 0, idle = 0, disposing = 0;
    // The daemon making network namespaces, and how many it will still make ahead.
    double holders_starting = 0, holders_ahead_left = 0;
  };

  void GetHealth(std::function<void(Health)> done) {
    client_->Get("/healthz", [done = std::move(done)](int status, std::string body) {
      Health h;
      h.status = status;
      if (json::Json j = json::Parse(body)) {
        h.in_flight = json::GetNumber(j.get(), "in_flight").value_or(0);
        h.waiting = json::GetNumber(j.get(), "waiting").value_or(0);
        h.environments = json::GetNumber(j.get(), "environments").value_or(0);
        h.idle = json::GetNumber(j.get(), "idle_environments").value_or(0);
        h.disposing = json::GetNumber(j.get(), "disposing").value_or(0);
        h.holders_starting = json::GetNumber(j.get(), "holders_starting").value_or(0);
        h.holders_ahead_left = json::GetNumber(j.get(), "holders_ahead_left").value_or(0);
      }
      done(h);
    });
  }

  double ExpectedIdle() const { return (warm_ready_ ? 1 : 0) + pool_expected_; }

  void PollQuiet(std::function<void()> next) {
    GetHealth([this, next = std::move(next)](Health h) mutable {
      bool quiet = h.status == 200 && h.in_flight == 0 && h.disposing == 0 &&
                   h.holders_starting == 0 && h.holders_ahead_left == 0 && h.idle >= ExpectedIdle();
      if (quiet || h.status == 0 || aborted_) return next();
      if (MonotonicMs() > quiet_deadline_) {
        if (unquiet_notes_++ < 3) {
          r_->notes.push_back(
              "the daemon was not quiet " + std::to_string(o_.settle_timeout_ms) +
              " ms after a sample (in flight " + std::to_string(static_cast<int>(h.in_flight)) +
              ", disposing " + std::to_string(static_cast<int>(h.disposing)) +
              ", holders starting " + std::to_string(static_cast<int>(h.holders_starting)) + " (" +
              std::to_string(static_cast<int>(h.holders_ahead_left)) +
              " more to make ahead), idle " + std::to_string(static_cast<int>(h.idle)) + " of " +
              std::to_string(static_cast<int>(ExpectedIdle())) + " expected)");
        }
        return next();
      }
      Later(2, [this, next = std::move(next)]() mutable { PollQuiet(std::move(next)); });
    });
  }

  // ---- Stage 3b: the pool's refill rate ----
  //
  // Pool invocations, each sent as soon as /healthz shows an idle pool environment (idle
  // environments above those of the other functions, counted once the pool is full), so
  // the pool is drained and refilled as fast as the daemon can: its sustained rate of
  // fresh containers, with at most --max-starts starts in flight.

  // Blocks of pool invocations alternate with blocks of the raw floor at as many starts in
  // flight as the refill can have (PoolRate::in_flight), so the two rates come from the
  // same stretch of time; the blocks run through the sweep's block runner (RunBlock), each
  // on a quiet engine and daemon, so every pool block starts on a full pool.
  void StartPoolRate() {
    if (pool_fn_.empty() || o_.pool_rate_samples <= 0 || aborted_) return StartSweep();
    PoolRate& pr = r_->pool_rate;
    pr.pool_size = o_.pool_size;
    pr.floor.series = kRawFloor;
    pr.floor.concurrency = pr.in_flight();
    const int n = o_.pool_rate_samples;
    const int blocks = n >= 40 ? 4 : n >= 8 ? 2 : 1;
    const int block = (n + blocks - 1) / blocks;
    for (int b = 0, done = 0; done < n; ++b, done += block) {
      int count = std::min(block, n - done);
      bool pool_first = b % 2 == 0;
      plan_.push_back({0, count, pool_first ? BlockKind::kPoolRefill : BlockKind::kPoolFloor});
      plan_.push_back({0, count, pool_first ? BlockKind::kPoolFloor : BlockKind::kPoolRefill});
    }
    StartSweep();
  }

  void RunPoolBlock() {
    pool_block_left_ = BlockCount();
    ++r_->pool_rate.blocks;
    block_cpu0_ = SnapshotCpu();
    block_t0_ = MonotonicMs();
    GetHealth([this](Health h) {
      other_idle_ = std::max(0.0, h.idle - pool_expected_);
      pool_poll_.StartBlock(static_cast<int>(pool_expected_));
      PoolRateNext();
    });
  }

  void PoolRateNext() {
    if (aborted_ || pool_block_left_ <= 0) {
      return Quiet([this] {
        AddBlockCpu(&r_->pool_rate.pool_cpu, BlockCount() - std::max(0, pool_block_left_));
        r_->pool_rate.refill_ms = pool_poll_.refills();
        r_->pool_rate.poll_basis_ms = pool_poll_.basis_ms();
        ++block_;
        Later(0, [this] { RunBlock(); });
      });
    }
    GetHealth([this](Health h) {
      ++r_->pool_rate.polls;
      if (aborted_) return PoolRateNext();
      double now = MonotonicMs();
      if (h.status == 200 && h.idle - other_idle_ < 1) {
        double delay = pool_poll_.DelayMs(now);
        pool_poll_.SawNoneIdle(now, delay);
        return Later(static_cast<uint64_t>(delay), [this] { PoolRateNext(); });
      }
      pool_poll_.Take(now);
      client_->Invoke(pool_fn_, o_.payload, "pool", [this](ProbeResult r) {
        PoolRate& pr = r_->pool_rate;
        --pool_block_left_;
        bool fresh =
            r.kind == ProbeResult::Kind::kKept && pool_seen_.insert(r.sample.environment_id).second;
        progress_.Tick("pool refill rate", r.sample.latency_ms, fresh);
        double answered = r.sample.start_ms + r.sample.latency_ms - run_t0_;
        r.sample.start_ms -= run_t0_;
        r.sample.index = static_cast<int>(pr.samples.size());
        r.sample.block = pr.blocks - 1;
        if (r.kind == ProbeResult::Kind::kFailed) {
          ++pr.failed;
          pr.rejects.Note(r.message);
        } else if (fresh) {
          ++pr.fresh;
          pr.fresh_answers.push_back(answered);
          pr.fresh_blocks.push_back(pr.blocks - 1);
        } else {
          ++pr.not_fresh;
          pr.rejects.Note(r.message.empty()
                              ? "environment " + r.sample.environment_id + " was used before"
                              : r.message);
        }
        if (r.kind != ProbeResult::Kind::kFailed) pr.samples.push_back(std::move(r.sample));
        PoolRateNext();
      });
    });
  }

  // ---- Stage 4: the concurrency sweep ----
  //
  // Each level runs in blocks that alternate between the two series (E R E R ... or
  // R E R E ..., which one first alternating by level), so a burst of other work on the
  // machine lands on both. A block holds at least 4 x concurrency samples (ramp-up and
  // drain stay a small part of it), so high levels get fewer, longer blocks. A block starts
  // on a settled engine; the level's wall time is the sum of its blocks'.

  enum class BlockKind {
    kSweep,       // a sweep level's block (r_->sweep[level])
    kPoolFloor,   // the raw floor between the pool's blocks (r_->pool_rate.floor)
    kPoolRefill,  // pool invocations (RunPoolBlock)
  };
  struct Block {
    size_t level;  // index into r_->sweep (kSweep)
    int count;
    BlockKind kind = BlockKind::kSweep;
  };

  // Appends the sweep's blocks to the plan (after the pool rate's, if any) and runs it.
  void StartSweep() {
    if (o_.sweep_samples > 0 && !aborted_) PlanSweep();
    if (plan_.empty() || aborted_) return StartThroughput();
    block_ = 0;
    Quiet([this] { RunBlock(); });
  }

  void PlanSweep() {
    const int n = o_.sweep_samples;
    std::vector<int> levels = SweepLevels();
    for (size_t li = 0; li < levels.size(); ++li) {
      int c = levels[li];
      bool with_ephemera = HasLevel(o_.sweep_levels, c);
      size_t e = r_->sweep.size();
      for (const char* key : {kEphemera, kRawFloor}) {
        if (key == kEphemera && !with_ephemera) continue;
        SweepLevel l;
        l.series = key;
        l.concurrency = c;
        r_->sweep.push_back(std::move(l));
      }
      int block = std::min(n, std::max(4 * c, (n + 3) / 4));
      for (int b = 0, done = 0; done < n; ++b, done += block) {
        int count = std::min(block, n - done);
        if (!with_ephemera) {  // a knee level: the floor alone
          plan_.push_back({e, count});
          continue;
        }
        bool ephemera_first = (b + static_cast<int>(li)) % 2 == 0;
        plan_.push_back({ephemera_first ? e : e + 1, count});
        plan_.push_back({ephemera_first ? e + 1 : e, count});
      }
    }
  }

  void RunBlock() {
    if (aborted_ || block_ >= plan_.size()) return StartThroughput();
    if (plan_[block_].kind == BlockKind::kPoolRefill) return RunPoolBlock();
    started_ = answered_ = disposed_ = in_flight_ = 0;
    block_first_ = block_last_ = 0;
    block_cpu0_ = SnapshotCpu();
    block_t0_ = MonotonicMs();
    Launch();
  }

  SweepLevel& Level() {
    return plan_[block_].kind == BlockKind::kPoolFloor ? r_->pool_rate.floor
                                                       : r_->sweep[plan_[block_].level];
  }
  int BlockCount() const { return plan_[block_].count; }

  void Launch() {
    SweepLevel& l = Level();
    while (!aborted_ && in_flight_ < l.concurrency && started_ < BlockCount()) {
      ++started_;
      ++in_flight_;
      if (block_first_ == 0) {
        block_first_ = MonotonicMs();
        l.block_starts.push_back(block_first_ - run_t0_);
      }
      int index = l.next_index++;
      if (l.series == kEphemera) {
        client_->Invoke(fn_->name, o_.payload, "cold", [this, index](ProbeResult r) {
          OnColdAnswer(r);
          OnLevelSample(index, std::move(r));
          ++disposed_;  // the daemon disposes by itself; settled at the block's end
          MaybeEndBlock();
        });
      } else {
        floor_->Run([this, index](ProbeResult r) { OnLevelSample(index, std::move(r)); },
                    [this] {
                      ++disposed_;
                      MaybeEndBlock();
                    });
      }
    }
  }

  void OnLevelSample(int index, ProbeResult r) {
    SweepLevel& l = Level();
    --in_flight_;
    ++answered_;
    block_last_ = MonotonicMs();
    progress_.Tick(SeriesLabel(*r_, l.series) + " @" + std::to_string(l.concurrency),
                   r.sample.latency_ms, r.kind == ProbeResult::Kind::kKept);
    if (r.kind == ProbeResult::Kind::kKept) {
      r.sample.index = index;
      r.sample.block = static_cast<int>(l.block_starts.size()) - 1;
      r.sample.concurrency = l.concurrency;
      r.sample.start_ms -= run_t0_;
      l.samples.push_back(std::move(r.sample));
    } else {
      ++(r.kind == ProbeResult::Kind::kWrongClass ? l.rejects.wrong_class_dropped
                                                  : l.rejects.failed);
      l.rejects.Note(r.message);
    }
    Launch();
  }

  void MaybeEndBlock() {
    int target = aborted_ ? started_ : BlockCount();  // interrupted: only what was started
    if (answered_ < target || disposed_ < target) return;
    Level().wall_ms += block_last_ - block_first_;
    // The next block only on a quiet engine and daemon, from a fresh loop turn.
    Quiet([this] {
      AddBlockCpu(&Level().cpu, aborted_ ? started_ : BlockCount());
      ++block_;
      Later(0, [this] { RunBlock(); });
    });
  }

  // Adds the CPU since the block began (block_cpu0_) to a series' account, with the
  // containers the block started.
  void AddBlockCpu(BlockCpu* acc, int containers) {
    Cpu now = SnapshotCpu();
    auto add = [](double* sum, double a, double b) {
      if (a < 0 || b < 0) return;
      *sum = std::max(0.0, *sum) + (b - a);
    };
    ++acc->blocks;
    acc->containers += containers;
    acc->wall_ms += MonotonicMs() - block_t0_;
    add(&acc->machine_ms, block_cpu0_.machine_ms, now.machine_ms);
    add(&acc->daemon_ms, block_cpu0_.daemon_ms, now.daemon_ms);
    add(&acc->bench_ms, block_cpu0_.self_ms, now.self_ms);
    add(&acc->containers_ms, block_cpu0_.containers_ms, now.containers_ms);
    add(&acc->redis_ms, block_cpu0_.redis_ms, now.redis_ms);
    add(&acc->steal_ms, block_cpu0_.steal_ms, now.steal_ms);
  }

  // ---- Stage 5: warm throughput, C keep-alive clients per level (loadgen.h) ----

  struct Cpu {
    double daemon_ms = -1, self_ms = -1, containers_ms = -1, machine_ms = -1;
    double redis_ms = -1, steal_ms = -1;
    double daemon_switches = -1;  // voluntary + involuntary context switches
  };

  // utime + stime of a process from /proc/PID/stat, ms; -1 if it is gone.
  static double ProcessCpuMs(pid_t pid, double tick_ms) {
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return -1;
    // Fields after "pid (comm)": state is 3rd, utime the 14th, stime the 15th.
    std::vector<std::string> f;
    size_t pos = paren + 2;
    while (pos < stat.size() && f.size() < 13) {
      size_t sp = stat.find(' ', pos);
      f.push_back(stat.substr(pos, sp - pos));
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
    if (f.size() < 13) return -1;
    return (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) * tick_ms;
  }

  // Every process whose name is redis-server (the project's scripts start one; a user may
  // run their own): the daemon's records and queue cost CPU there.
  static double RedisCpuMs(double tick_ms) {
    double total = -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string comm = ReadFile(entry.path().string() + "/comm");
      if (comm.rfind("redis-server", 0) != 0) continue;
      double ms = ProcessCpuMs(static_cast<pid_t>(std::atoi(name.c_str())), tick_ms);
      if (ms >= 0) total = (total < 0 ? 0 : total) + ms;
    }
    return total;
  }

  Cpu SnapshotCpu() const {
    Cpu c;
    double tick_ms = 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    if (daemon_pid_ > 0) c.daemon_ms = ProcessCpuMs(daemon_pid_, tick_ms);
    c.redis_ms = RedisCpuMs(tick_ms);
    if (daemon_pid_ > 0) {
      double v = ReadStatusKb(daemon_pid_, "voluntary_ctxt_switches");
      double n = ReadStatusKb(daemon_pid_, "nonvoluntary_ctxt_switches");
      if (v >= 0 && n >= 0) c.daemon_switches = v + n;
    }
    rusage ru{};
    if (::getrusage(RUSAGE_SELF, &ru) == 0) {
      c.self_ms = (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
    }
    std::string usage = ReadFile("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage");
    if (usage.empty()) usage = ReadFile("/sys/fs/cgroup/system.slice/cpuacct.usage");
    if (!usage.empty()) c.containers_ms = std::atof(usage.c_str()) / 1e6;
    std::string procstat = ReadFile("/proc/stat");
    if (procstat.rfind("cpu ", 0) == 0) {
      // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
      double v[8] = {0};
      std::sscanf(procstat.c_str(), "cpu %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2],
                  &v[3], &v[4], &v[5], &v[6], &v[7]);
      c.machine_ms = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * tick_ms;
      c.steal_ms = v[7] * tick_ms;
    }
    return c;
  }

  static std::string ReadFile(const std::string& path) {
    std::string text;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    return text;
  }

  // "http://127.0.0.1:9000" -> host, port.
  bool EndpointAddress(std::string* host, int* port) const {
    std::string e = r_->config.endpoint;
    if (e.rfind("http://", 0) == 0) e = e.substr(7);
    size_t slash = e.find('/');
    if (slash != std::string::npos) e = e.substr(0, slash);
    size_t colon = e.rfind(':');
    if (colon == std::string::npos) return false;
    *host = e.substr(0, colon);
    if (*host == "localhost") *host = "127.0.0.1";
    *port = std::atoi(e.substr(colon + 1).c_str());
    return *port > 0;
  }

  void StartThroughput() {
    std::string host;
    int port = 0;
    if (warm_fn_.empty() || o_.throughput_levels.empty() || o_.throughput_seconds <= 0 ||
        aborted_) {
      return StartQueueMemory();
    }
    if (!EndpointAddress(&host, &port)) {
      r_->notes.push_back("throughput not measured: the endpoint " + r_->config.endpoint +
                          " is not http://IPv4:port");
      return StartQueueMemory();
    }
    tp_host_ = host;
    tp_port_ = port;
    tp_index_ = 0;
    Quiet([this] { ThroughputLevelStart(); });
  }

  LoadOptions WarmLoad(int connections) const {
    LoadOptions lo;
    lo.host = tp_host_;
    lo.port = tp_port_;
    lo.request = HttpPost(tp_host_ + ":" + std::to_string(tp_port_),
                          "/2015-03-31/functions/" + warm_fn_ + "/invocations", o_.payload);
    lo.connections = connections;
    lo.expect_header = "X-Ephemera-Start";
    lo.expect_value = "warm";
    return lo;
  }

  // Before a level: batches of C simultaneous one-shot requests until one batch is all
  // warm, so the level has its environments (C of them) before it is timed.
  void ThroughputLevelStart(int batch = 0) {
    if (aborted_ || tp_index_ >= o_.throughput_levels.size()) return MaybeProfile();
    int c = o_.throughput_levels[tp_index_];
    if (batch == 0)
      progress_.Say("throughput: " + std::to_string(c) + " keep-alive client(s), warming up");
    LoadOptions lo = WarmLoad(c);
    lo.requests_per_connection = 1;
    lo.close_when_done = true;
    lo.duration_ms = 0;
    loadgen_ = std::make_unique<LoadGenerator>(&loop_, lo);
    loadgen_->Run([this, c, batch](LoadResult res) {
      bool all_warm = res.completed == static_cast<uint64_t>(c) && res.errors == 0;
      // Failures while warming up are not measured, but they are said (cold starts are
      // what warming up is for).
      for (const std::string& m : res.messages) {
        if (tp_notes_++ < 5)
          r_->notes.push_back("throughput at " + std::to_string(c) + " clients, warming up: " + m);
      }
      Later(0, [this, c, batch, all_warm] {
        loadgen_.reset();
        if (!all_warm && batch < 20) return ThroughputLevelStart(batch + 1);
        if (!all_warm) {
          r_->notes.push_back("throughput at " + std::to_string(c) +
                              " clients: 20 warm-up batches were not all warm");
        }
        ThroughputLevelRun();
      });
    });
  }

  void ThroughputLevelRun() {
    int c = o_.throughput_levels[tp_index_];
    LoadOptions lo = WarmLoad(c);
    lo.warmup_ms = o_.throughput_warmup_seconds * 1000;
    lo.duration_ms = o_.throughput_seconds * 1000;
    lo.on_window_start = [this] { cpu0_ = SnapshotCpu(); };
    lo.on_window_end = [this] { cpu1_ = SnapshotCpu(); };
    loadgen_ = std::make_unique<LoadGenerator>(&loop_, lo);
    loadgen_->Run([this, c](LoadResult res) {
      ThroughputLevel l;
      l.concurrency = c;
      l.duration_ms = res.window_ms;
      l.completed = res.completed;
      l.not_warm = res.mismatched;
      l.errors = res.errors;
      l.latencies = std::move(res.latencies);
      auto delta = [](double a, double b) { return a >= 0 && b >= 0 ? b - a : -1; };
      l.daemon_cpu_ms = delta(cpu0_.daemon_ms, cpu1_.daemon_ms);
      l.loadgen_cpu_ms = delta(cpu0_.self_ms, cpu1_.self_ms);
      l.containers_cpu_ms = delta(cpu0_.containers_ms, cpu1_.containers_ms);
      l.machine_cpu_ms = delta(cpu0_.machine_ms, cpu1_.machine_ms);
      l.redis_cpu_ms = delta(cpu0_.redis_ms, cpu1_.redis_ms);
      l.steal_ms = delta(cpu0_.steal_ms, cpu1_.steal_ms);
      l.daemon_switches = delta(cpu0_.daemon_switches, cpu1_.daemon_switches);
      for (const std::string& m : res.messages) {
        if (tp_notes_++ < 5)
          r_->notes.push_back("throughput at " + std::to_string(c) + " clients: " + m);
      }
      for (const std::string& m : res.mismatches) {
        if (tp_notes_++ < 10)
          r_->notes.push_back("throughput at " + std::to_string(c) + " clients, not warm: " + m);
      }
      char line[200];
      std::snprintf(line, sizeof line, "throughput: %d client(s): %.0f warm invokes/s", c,
                    l.per_second());
      progress_.Say(line);
      r_->throughput.push_back(std::move(l));
      Later(0, [this] {
        loadgen_.reset();
        GetHealth([this](Health h) {
          if (!r_->throughput.empty())
            r_->throughput.back().environments = static_cast<int>(h.environments);
          ++tp_index_;
          ThroughputLevelStart();
        });
      });
    });
  }

  // A profile of the daemon under the top throughput level (not counted): perf record for
  // a few seconds, then the symbols with the largest shares.
  void MaybeProfile() {
    if (!o_.perf || daemon_pid_ == 0 || o_.throughput_levels.empty() || aborted_ ||
        ::access("/usr/bin/perf", X_OK) != 0) {
      return StartQueueMemory();
    }
    int c = *std::max_element(o_.throughput_levels.begin(), o_.throughput_levels.end());
    perf_data_ = o_.out_dir + "/perf.data";
    progress_.Say("profile: perf record of the daemon under " + std::to_string(c) +
                  " warm clients (not counted)");
    LoadOptions lo = WarmLoad(c);
    lo.warmup_ms = 500;
    lo.duration_ms = 3000;  // the window is perf's 3 s
    lo.on_window_start = [this] {
      perf_argv_ = {"/usr/bin/perf",
                    "record",
                    "-q",
                    "-F",
                    "999",
                    "-g",
                    "-p",
                    std::to_string(daemon_pid_),
                    "-o",
                    perf_data_,
                    "--",
                    "sleep",
                    "3"};
      // System calls and context switches of the daemon over the same 3 s.
      perf_stat_file_ = o_.out_dir + "/perf-stat.csv";
      perf_stat_argv_ = {"/usr/bin/perf",
                         "stat",
                         "-x,",
                         "-e",
                         "raw_syscalls:sys_enter,context-switches",
                         "-p",
                         std::to_string(daemon_pid_),
                         "-o",
                         perf_stat_file_,
                         "--",
                         "sleep",
                         "3"};
      perf_running_ = 2;
      for (auto* argv : {&perf_argv_, &perf_stat_argv_}) {
        bool record = argv == &perf_argv_;
        SpawnQuiet(*argv, [this, record](int64_t status) {
          if (record) perf_status_ = status;
          if (!record && status != 0)
            r_->notes.push_back("perf stat of the daemon failed (status " + std::to_string(status) +
                                ")");
          --perf_running_;
          FinishProfile();
        });
      }
    };
    loadgen_ = std::make_unique<LoadGenerator>(&loop_, lo);
    loadgen_->Run([this](LoadResult res) {
      profile_rate_ =
          res.window_ms > 0 ? static_cast<double>(res.completed) * 1000.0 / res.window_ms : 0;
      Later(0, [this] {
        loadgen_.reset();
        FinishProfile();
      });
    });
  }

  // Once both the load and perf are done.
  void FinishProfile() {
    if (loadgen_ || perf_running_ > 0 || profile_done_) return;
    profile_done_ = true;
    ReadPerfStat();
    if (perf_status_ != 0) {
      r_->notes.push_back("perf record of the daemon failed (status " +
                          std::to_string(perf_status_) + ")");
    } else {
      ReadProfile();
    }
    StartQueueMemory();
  }

  // perf stat's CSV: "count,,event,..." lines. Per invoke at the profile's rate.
  void ReadPerfStat() {
    std::string text = ReadFile(perf_stat_file_);
    std::remove(perf_stat_file_.c_str());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? text.size() : nl + 1;
      size_t c1 = line.find(',');
      if (c1 == std::string::npos || line.empty() || line[0] == '#') continue;
      size_t c2 = line.find(',', c1 + 1), c3 = line.find(',', c2 + 1);
      if (c2 == std::string::npos) continue;
      std::string event = line.substr(c2 + 1, c3 == std::string::npos ? c3 : c3 - c2 - 1);
      double count = std::atof(line.c_str());
      if (profile_rate_ <= 0 || count <= 0) continue;
      double per = count / (profile_rate_ * 3.0);  // the window is perf's 3 s
      char buf[200];
      std::snprintf(buf, sizeof buf, "daemon %s: %.0f in 3 s, %.2f per invoke (at %.0f invokes/s)",
                    event.c_str(), count, per, profile_rate_);
      r_->throughput_profile.insert(r_->throughput_profile.begin(), buf);
    }
  }

  void ReadProfile() {
    // Blocking, but nothing is being measured now.
    std::string cmd = "/usr/bin/perf report -i '" + perf_data_ +
                      "' --stdio --no-children -g none --percent-limit 1 --sort dso,symbol "
                      "2>/dev/null";
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return;
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      std::string l = line;
      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
      if (l.rfind("# Samples:", 0) == 0 || l.rfind("# Event count", 0) == 0) {
        r_->throughput_profile.push_back("perf record:" + l.substr(1));
        continue;
      }
      if (l.empty() || l[0] == '#' || l.find('%') == std::string::npos) continue;
      if (r_->throughput_profile.size() < 30) r_->throughput_profile.push_back(l);
    }
    ::pclose(f);
    std::remove(perf_data_.c_str());
    std::remove((perf_data_ + ".old").c_str());
  }

  void SpawnQuiet(std::vector<std::string>& argv, std::function<void(int64_t)> done) {
    struct Child {
      uv_process_t proc{};
      std::function<void(int64_t)> done;
    };
    auto* ch = new Child;
    ch->done = std::move(done);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    for (auto& x : stdio) x.flags = UV_IGNORE;
    uv_process_options_t opts{};
    opts.file = args[0];
    opts.args = args.data();
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.exit_cb = [](uv_process_t* p, int64_t status, int) {
      auto* ch = static_cast<Child*>(p->data);
      if (ch->done) ch->done(status);
      uv_close(reinterpret_cast<uv_handle_t*>(p),
               [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
    };
    ch->proc.data = ch;
    if (uv_spawn(&loop_, &ch->proc, &opts) < 0) {
      auto cb = std::move(ch->done);
      uv_close(reinterpret_cast<uv_handle_t*>(&ch->proc),
               [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
      if (cb) cb(-1);
    }
  }

  // ---- Stage 6: the daemon's memory with invocations queued ----
  //
  // A function with concurrency 1, a queue of N and a handler that sleeps: N + 1
  // synchronous invocations (one runs, N wait, each client connection held open), then
  // N + 1 Event invocations (one runs, N wait without a bound). VmRSS of the daemon
  // before and with them waiting.

  static double ReadStatusKb(int pid, const char* field) {
    std::string text = ReadFile("/proc/" + std::to_string(pid) + "/status");
    size_t at = text.find(std::string(field) + ":");
    if (at == std::string::npos) return -1;
    return std::atof(text.c_str() + at + std::strlen(field) + 1);
  }

  std::string QueueBody(const std::string& name) const {
    json::Json body = json::NewObject();
    cJSON* b = body.get();
    cJSON_AddStringToObject(b, "FunctionName", name.c_str());
    cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "Code"), "ImageUri", kQueueImage);
    cJSON_AddStringToObject(b, "Role", "arn:aws:iam::000000000000:role/ephemera-bench");
    cJSON_AddNumberToObject(b, "Timeout", 900);
    cJSON* ic = cJSON_AddObjectToObject(b, "ImageConfig");
    json::AddStringArray(ic, "EntryPoint", {"sleep"});
    json::AddStringArray(ic, "Command", {"900"});
    cJSON* vars = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "Environment"), "Variables");
    cJSON_AddStringToObject(vars, "EPHEMERA_MODE", "exec");
    cJSON_AddStringToObject(vars, "EPHEMERA_CONCURRENCY", "1");
    cJSON_AddStringToObject(vars, "EPHEMERA_QUEUE_SIZE",
                            std::to_string(o_.queue_invocations).c_str());
    cJSON_AddStringToObject(vars, "EPHEMERA_QUEUE_TIMEOUT", "900");
    return json::Print(b);
  }

  // Event invocations first, on a function of their own: they cannot be cancelled, so they
  // stay queued (until the daemon stops) while the synchronous ones are measured on a
  // second function; the sync figure therefore holds both queues.
  void StartQueueMemory() {
    if (o_.queue_invocations <= 0 || aborted_) return Cleanup();
    if (daemon_pid_ == 0) {
      r_->notes.push_back(
          "queue memory not measured: the daemon is not ours (--endpoint), so "
          "its RSS cannot be read");
      return Cleanup();
    }
    if (!EndpointAddress(&tp_host_, &tp_port_)) return Cleanup();
    std::string name = fn_->name + "-queue-event";
    CreateFunction(name, QueueBody(name), [this, name](bool ok) {
      if (!ok) {
        r_->notes.push_back("queue memory not measured: could not create " + name);
        return Cleanup();
      }
      QueueEvent(name);
    });
  }

  LoadOptions QueueLoad(int connections, int per_connection) const {
    LoadOptions lo;
    lo.host = tp_host_;
    lo.port = tp_port_;
    lo.connections = connections;
    lo.requests_per_connection = per_connection;
    lo.duration_ms = 0;
    return lo;
  }

  void QueueEvent(const std::string& name) {
    progress_.Say("queue memory: " + std::to_string(o_.queue_invocations + 1) +
                  " Event invocations of " + name + " (concurrency 1)");
    QueueMemory q;
    q.kind = "event";
    q.wanted = o_.queue_invocations;
    q.submitted = o_.queue_invocations + 1;
    q.baseline_kb = ReadStatusKb(daemon_pid_, "VmRSS");
    r_->queue_memory.push_back(q);
    int total = o_.queue_invocations + 1, conns = 10;
    while (total % conns != 0) --conns;  // exactly N + 1, spread over a few connections
    LoadOptions lo = QueueLoad(conns, total / conns);
    lo.close_when_done = true;
    lo.expect_status = 202;
    lo.request = HttpPost(tp_host_ + ":" + std::to_string(tp_port_),
                          "/2015-03-31/functions/" + name + "/invocations", o_.payload,
                          "X-Amz-Invocation-Type: Event\r\n");
    loadgen_ = std::make_unique<LoadGenerator>(&loop_, lo);
    loadgen_->Run([this](LoadResult res) {
      for (const std::string& m : res.messages) {
        if (tp_notes_++ < 8) r_->notes.push_back("queue memory (event): " + m);
      }
      Later(0, [this] {
        loadgen_.reset();
        queue_deadline_ = MonotonicMs() + 60000;
        PollQueue(o_.queue_invocations, [this] {
          events_waiting_ = r_->queue_memory.back().queued;
          StartQueueSync();
        });
      });
    });
  }

  void StartQueueSync() {
    if (aborted_) return Cleanup();
    queue_fn_ = fn_->name + "-queue";
    CreateFunction(queue_fn_, QueueBody(queue_fn_), [this](bool ok) {
      if (!ok) {
        r_->notes.push_back("queue memory (sync) not measured: could not create " + queue_fn_);
        return Cleanup();
      }
      QueueSync();
    });
  }

  void QueueSync() {
    progress_.Say("queue memory: " + std::to_string(o_.queue_invocations + 1) +
                  " synchronous invocations of " + queue_fn_ + " (concurrency 1)");
    QueueMemory q;
    q.kind = "sync";
    q.wanted = o_.queue_invocations;
    q.submitted = o_.queue_invocations + 1;
    q.baseline_kb = ReadStatusKb(daemon_pid_, "VmRSS");
    q.note = std::to_string(events_waiting_) + " Event invocations still queued";
    r_->queue_memory.push_back(q);
    LoadOptions lo = QueueLoad(o_.queue_invocations + 1, 1);
    lo.request = HttpPost(tp_host_ + ":" + std::to_string(tp_port_),
                          "/2015-03-31/functions/" + queue_fn_ + "/invocations", o_.payload);
    loadgen_ = std::make_unique<LoadGenerator>(&loop_, lo);
    loadgen_->Run([this](LoadResult res) {
      for (const std::string& m : res.messages) {
        if (tp_notes_++ < 8) r_->notes.push_back("queue memory (sync): " + m);
      }
      // The clients went away (the daemon cancels theirs); the Event invocations are
      // cancelled when the daemon stops.
      Later(0, [this] {
        loadgen_.reset();
        Cleanup();
      });
    });
    queue_deadline_ = MonotonicMs() + 60000;
    PollQueue(events_waiting_ + o_.queue_invocations, [this] { loadgen_->Stop(); });
  }

  // Polls /healthz and the daemon's RSS until `waiting` reaches `target` (or the deadline).
  void PollQueue(int target, std::function<void()> next) {
    GetHealth([this, target, next = std::move(next)](Health h) mutable {
      QueueMemory& q = r_->queue_memory.back();
      double rss = ReadStatusKb(daemon_pid_, "VmRSS");
      q.peak_kb = std::max(q.peak_kb, rss);
      q.hwm_kb = ReadStatusKb(daemon_pid_, "VmHWM");
      int waiting = static_cast<int>(h.waiting) - (q.kind == "sync" ? events_waiting_ : 0);
      q.queued = std::max(q.queued, waiting);
      bool full = h.waiting >= target;
      // Event invocations wait in Redis when the daemon has it, and the daemon takes only
      // as many as it may run or queue (--event-concurrency): once every one was accepted
      // and its count has not moved for a second, that is all it will hold.
      double now = MonotonicMs();
      if (h.waiting != poll_last_waiting_) {
        poll_last_waiting_ = h.waiting;
        poll_last_change_ = now;
      }
      bool settled = q.kind == "event" && now - poll_last_change_ > 1000;
      if (settled && !full) {
        q.note = "the daemon held " + std::to_string(waiting) + " of the " +
                 std::to_string(q.submitted) +
                 " accepted (202); the rest waited in Redis, outside the daemon";
        full = true;
      }
      if (full || aborted_ || h.status == 0 || now > queue_deadline_) {
        if (!full) {
          q.note += std::string(q.note.empty() ? "" : "; ") + "only " + std::to_string(waiting) +
                    " waiting after 60 s";
        }
        // One more reading a moment later, with all of them queued.
        return Later(200, [this, next = std::move(next)] {
          QueueMemory& q = r_->queue_memory.back();
          q.peak_kb = std::max(q.peak_kb, ReadStatusKb(daemon_pid_, "VmRSS"));
          q.hwm_kb = ReadStatusKb(daemon_pid_, "VmHWM");
          next();
        });
      }
      Later(50, [this, target, next = std::move(next)]() mutable {
        PollQueue(target, std::move(next));
      });
    });
  }

  // ---- Stage 7: leave nothing behind ----

  void Cleanup() {
    progress_.Finish();
    loadgen_.reset();
    RemoveOurs([this] { DeleteCreated(); });
  }

  // The floor's and docker run's containers, then the floor's holders.
  void RemoveOurs(std::function<void()> next) {
    RemoveLabelled("ephemera.bench=" + run_label_,
                   [this, next = std::move(next)]() mutable { RemoveHolders(std::move(next)); });
  }

  // Every holder of the floor's (lent out or not), then any the engine still lists with
  // our label (one whose start raced an interruption, say).
  void RemoveHolders(std::function<void()> next) {
    if (!holders_) return next();
    holders_->RemoveAll([this, next = std::move(next)]() mutable {
      RecordHolders();
      RemoveLabelled(std::string(kHolderLabel) + "=" + run_label_, std::move(next));
    });
  }

  // Functions we created on a daemon that is not ours (ours keeps no state: --state none).
  void DeleteCreated() {
    if (o_.endpoint.empty() || created_.empty() || !client_) return StopDaemon();
    std::string name = created_.back();
    created_.pop_back();
    client_->Delete("/2015-03-31/functions/" + name, [this, name](int status, std::string) {
      if (status != 204 && status != 200)
        r_->notes.push_back("DeleteFunction " + name + ": HTTP " + std::to_string(status));
      DeleteCreated();
    });
  }

  void RemoveLabelled(const std::string& filter, std::function<void()> next) {
    docker_->ListContainers(
        filter, [this, filter, next = std::move(next)](Status s, std::vector<std::string> ids) {
          if (!s.ok() || ids.empty()) return next();
          r_->notes.push_back(std::to_string(ids.size()) + " container(s) labelled " + filter +
                              " were left at the end and removed");
          auto left = std::make_shared<size_t>(ids.size());
          for (const std::string& id : ids) {
            docker_->RemoveContainer(id, [left, next](Status) {
              if (--*left == 0) next();
            });
          }
        });
  }

  void StopDaemon() {
    if (!daemon_.running()) return Done();
    daemon_.Stop(
        [this] { r_->notes.push_back("the daemon did not stop within 30 s of SIGTERM; killed"); });
  }

  void OnDaemonExit(int64_t status, int signal) {
    if (!stopping_expected() && !interrupted_) {
      r_->notes.push_back("the daemon exited during the run (status " + std::to_string(status) +
                          ", signal " + std::to_string(signal) + "); see daemon.log");
      fatal_ = Status(StatusCode::kUnavailable,
                      "the daemon exited during the run; see " + o_.out_dir + "/daemon.log");
      // Stop issuing work: the pending callbacks fail and the loop ends once they are done.
      aborted_ = true;
    }
    if (status != 0 && stopping_expected()) {
      r_->notes.push_back("the daemon exited with status " + std::to_string(status) +
                          " after SIGTERM");
    }
    if (stopping_expected()) Done();
  }

  bool stopping_expected() const { return daemon_.stopping(); }

  void Done() {
    // Containers of our daemon that it did not remove (it should have, on SIGTERM).
    std::string filter =
        o_.endpoint.empty() ? "ephemera.daemon=" + std::to_string(daemon_pid_) : "";
    auto finish = [this] {
      r_->config.duration_s = (MonotonicMs() - run_t0_) / 1000.0;
      r_->environment.emplace_back("load_avg_end", LoadAverage());
      docker_run_.reset();
      floor_.reset();
      holders_.reset();
      client_.reset();
      docker_.reset();  // the loop now runs out of handles and uv_run returns
    };
    if (filter.empty() || daemon_pid_ == 0) return finish();
    RemoveLabelled(filter, finish);
  }

  // ---- helpers ----

  void Fail(const std::string& why) {
    fatal_ = Status(StatusCode::kUnavailable, why);
    progress_.Finish();
    // Whatever runs still gets cleaned up.
    if (daemon_.running() && !stopping_expected()) {
      RemoveOurs([this] { StopDaemon(); });
      return;
    }
    if (holders_ && !stopping_expected() && !releasing_) {
      releasing_ = true;
      RemoveOurs([this] { ReleaseAll(); });
      return;
    }
    ReleaseAll();
  }

  void ReleaseAll() {
    client_.reset();
    floor_.reset();
    docker_run_.reset();
    holders_.reset();
    docker_.reset();
  }

  void Later(uint64_t ms, std::function<void()> fn) {
    auto t = std::make_shared<Timer>(&loop_);
    t->Start(ms, [t, fn = std::move(fn)] {
      t->Close();
      fn();
    });
  }

  const BenchOptions& o_;
  RunResult* r_;
  uv_loop_t loop_{};
  double run_t0_ = 0;
  std::string run_label_;
  std::shared_ptr<const registry::FunctionSpec> fn_;
  std::unique_ptr<docker::DockerClient> docker_;
  std::unique_ptr<EphemeraClient> client_;
  std::unique_ptr<RawFloor> floor_;
  std::unique_ptr<FloorHolders> holders_;  // an isolated function's floor only
  std::string floor_dir_;                  // ... and its sample folders
  bool releasing_ = false;
  std::unique_ptr<DockerRun> docker_run_;
  std::unique_ptr<LoadGenerator> loadgen_;
  std::vector<std::string> docker_run_argv_;
  // The functions the benchmark creates, and what settling waits for.
  std::string warm_fn_, pool_fn_, queue_fn_;
  std::vector<std::string> created_;
  bool warm_ready_ = false;  // the warm function has an environment
  double pool_expected_ = 0;
  double other_idle_ = 0;
  std::set<std::string> pool_seen_;  // pool environments used so far
  double quiet_deadline_ = 0;
  // --precreate: the cold function's container created ahead should be there (a cold
  // start was answered), and until when settling waits for it.
  bool ahead_expected_ = false;
  double settle_cold_deadline_ = 0;
  int unquiet_notes_ = 0;
  // Throughput and queue memory.
  std::string tp_host_;
  int tp_port_ = 0;
  size_t tp_index_ = 0;
  int tp_notes_ = 0;
  Cpu cpu0_, cpu1_;
  Cpu block_cpu0_;  // at the start of the current block (a sweep level's, the pool's, its floor's)
  double block_t0_ = 0;
  std::string perf_data_;
  std::vector<std::string> perf_argv_;
  int64_t perf_status_ = -1;
  int perf_running_ = 0;
  bool profile_done_ = false;
  std::string perf_stat_file_;
  std::vector<std::string> perf_stat_argv_;
  double profile_rate_ = 0;
  double queue_deadline_ = 0;
  int events_waiting_ = 0;
  double poll_last_waiting_ = -1, poll_last_change_ = 0;
  std::string floor_spec_text_;
  Progress progress_;
  std::vector<std::string> order_;
  int round_ = 0;
  size_t pos_ = 0;
  std::vector<Block> plan_;
  size_t block_ = 0;
  int pool_block_left_ = 0;  // pool invocations still to send in this pool block
  PoolPollPlan pool_poll_;
  int started_ = 0, answered_ = 0, disposed_ = 0, in_flight_ = 0;
  double block_first_ = 0, block_last_ = 0;
  int unsettled_notes_ = 0;
  // The daemon.
  DaemonProcess daemon_{&loop_};
  std::vector<std::string> daemon_args_;
  int daemon_pid_ = 0;
  int daemon_log_fd_ = -1;
  double health_deadline_ = 0;
  bool aborted_ = false;
  bool interrupted_ = false;
  UvHandle<uv_signal_t> sigint_, sigterm_;
  Status fatal_;
};

}  // namespace

std::string RedisPrefix(const std::string& run_label) {
  return "ephemera-bench-" + run_label + ":";
}

Status RunBenchmark(const BenchOptions& options, RunResult* result) {
  result->environment = CollectEnvironment(options.docker_cli, "", options.source_dir);
  Runner runner(options, result);
  Status s = runner.Run();
  if (options.endpoint.empty()) {
    // Our daemon's keys in Redis (Event invocations it did not run, records): gone.
    const char* url = std::getenv("REDIS_URL");
    std::string u = url != nullptr && *url != '\0' ? url : "redis://127.0.0.1:6379";
    std::string prefix = RedisPrefix(std::to_string(::getpid()));
    std::string cmd = "command -v redis-cli >/dev/null && redis-cli -u '" + u +
                      "' --scan --pattern '" + prefix + "*' | xargs -r -n 100 redis-cli -u '" + u +
                      "' del >/dev/null 2>&1; redis-cli -u '" + u + "' --scan --pattern '" +
                      prefix + "*' 2>/dev/null | head -1";
    std::string left = CommandLine(cmd);
    if (!left.empty()) {
      result->notes.push_back("keys with the prefix " + prefix +
                              " are left in Redis (redis-cli could not delete them)");
    }
  }
  // The image fields need the function's image, known once the registry was read.
  for (auto& [k, v] : result->environment) {
    if (k == "image") v = result->config.image;
    if ((k == "image_id" || k == "image_size_bytes") && !result->config.image.empty()) {
      v = CommandLine(options.docker_cli + " image inspect --format '{{." +
                      std::string(k == "image_id" ? "Id" : "Size") + "}}' '" +
                      result->config.image + "'");
    }
  }
  return s;
}

std::vector<MicrobenchResult> RunMicrobench(const std::string& binary, const std::string& json_out,
                                            std::string* error) {
  std::vector<MicrobenchResult> out;
  std::string cmd = "'" + binary + "' --benchmark_format=json 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) {
    *error = "cannot run " + binary;
    return out;
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int rc = ::pclose(f);
  json::Json root = json::Parse(text);
  const cJSON* benches =
      root ? cJSON_GetObjectItemCaseSensitive(root.get(), "benchmarks") : nullptr;
  if (rc != 0 || !cJSON_IsArray(benches)) {
    *error = binary + " failed (exit status " + std::to_string(rc) + ") or printed no JSON";
    return out;
  }
  if (!json_out.empty()) {
    if (FILE* o = std::fopen(json_out.c_str(), "w")) {
      std::fwrite(text.data(), 1, text.size(), o);
      std::fclose(o);
    }
  }
  const cJSON* b = nullptr;
  cJSON_ArrayForEach(b, benches) {
    MicrobenchResult m;
    m.name = json::GetString(b, "name").value_or("");
    m.items_per_second = json::GetNumber(b, "items_per_second").value_or(0);
    m.label = json::GetString(b, "label").value_or("");
    m.ns_per_item = m.items_per_second > 0 ? 1e9 / m.items_per_second : 0;
    if (json::GetString(b, "run_type").value_or("iteration") != "iteration") continue;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace ephemera::bench
