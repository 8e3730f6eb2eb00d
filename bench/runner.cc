// bench/runner.cc: the stages of one run (see runner.h), top to bottom.
#include "bench/runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <utility>

#include "bench/environment.h"
#include "bench/probes.h"
#include "bench/progress.h"
#include "bench/report.h"
#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/uv_handle.h"
#include "runtime/json/json.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::bench {
namespace {

using sandbox::InjectsShim;
using sandbox::kShimMountPoint;

std::string IsoUtcNow() {
  time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) {
    bool plain = !x.empty() && x.find_first_of(" \t\"'$\\{}*;&|<>") == std::string::npos;
    s += (s.empty() ? "" : " ") + (plain ? x : "'" + x + "'");
  }
  return s;
}

}  // namespace

Status FloorSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const std::string& runtime_api_address, docker::ContainerSpec* out) {
  sandbox::ContainerParams params;
  params.runtime_api_address = runtime_api_address;
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

std::vector<std::string> DockerRunArgv(const BenchOptions& o, const registry::FunctionSpec& fn,
                                       const std::string& run_label, std::string* why) {
  std::vector<std::string> argv = {o.docker_cli,    "run",
                                   "--rm",          "-i",
                                   "--network",     fn.network,
                                   "--memory",      std::to_string(fn.memory_mb) + "m",
                                   "--memory-swap", std::to_string(fn.memory_mb) + "m",
                                   "--label",       "ephemera.bench=" + run_label};
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
    client_.reset();
    docker_.reset();
    daemon_exit_timer_.reset();
    daemon_proc_.Close();
    uv_run(&loop_, UV_RUN_DEFAULT);
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

    if (o_.docker_run) {
      std::string why;
      docker_run_argv_ = DockerRunArgv(o_, *fn_, run_label_, &why);
      if (docker_run_argv_.empty()) r_->notes.push_back("docker run series skipped: " + why);
    } else {
      r_->notes.push_back("docker run series skipped (--no-docker-run)");
    }
    r_->notes.push_back(
        "warm and pool invocations are not measured: the daemon implements only the cold "
        "policy so far (registry.h: Policy { kCold }); they will join the interleaved rounds "
        "once the policies issue lands.");
    order_ = {kEphemera, kRawFloor};
    if (!docker_run_argv_.empty()) order_.push_back(kDockerRun);
    int levels = o_.sweep_samples > 0 ? static_cast<int>(o_.sweep_levels.size()) : 0;
    progress_.set_total((o_.warmups + o_.samples) * static_cast<int>(order_.size()) +
                        levels * o_.sweep_samples * 2);
    return Status::Ok();
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
      if (daemon_running_) uv_process_kill(daemon_proc_.get(), SIGKILL);
      std::fprintf(stderr,
                   "\nephemera-bench: stopped at once; containers labelled "
                   "ephemera.bench=%s may be left\n",
                   run_label_.c_str());
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
    daemon_args_ = {o_.ephemera_bin, "serve",
                    "--listen",      "127.0.0.1:" + std::to_string(port),
                    "--registry",    o_.registry_path,
                    "--shim",        o_.shim_path,
                    "--log-level",   "warn"};
    if (!o_.docker_endpoint.empty()) {
      daemon_args_.push_back("--docker");
      daemon_args_.push_back(o_.docker_endpoint);
    }
    std::vector<char*> args;
    for (std::string& a : daemon_args_) args.push_back(a.data());
    args.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = daemon_log_fd_;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = daemon_log_fd_;
    uv_process_options_t opts{};
    opts.file = args[0];
    opts.args = args.data();
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
      if (auto* self = static_cast<Runner*>(p->data)) self->OnDaemonExit(status, signal);
    };
    if (int rc = daemon_proc_.Init(&loop_, uv_spawn, &opts); rc < 0) {
      return Fail("cannot start " + o_.ephemera_bin + ": " + uv_strerror(rc));
    }
    daemon_proc_.get()->data = this;
    daemon_pid_ = daemon_proc_.get()->pid;
    daemon_running_ = true;
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
      if (o_.endpoint.empty() && !daemon_running_) {  // it exited: say why, do not wait
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
      docker::ContainerSpec spec;  // the first sample's, for the description
      if (Status b = FloorSpec(*fn_, image, o_.shim_path, run_label_, "127.0.0.1:0", &spec);
          !b.ok()) {
        return Fail("the raw floor's container for " + fn_->name + ": " + b.message());
      }
      floor_spec_text_ = spec.entrypoint.empty() ? "the image's ENTRYPOINT" : Join(spec.entrypoint);
      floor_spec_text_ += spec.cmd.empty() ? " with the image's CMD" : " " + Join(spec.cmd);
      floor_ = std::make_unique<RawFloor>(
          &loop_, docker_.get(),
          [this, image](const std::string& address, docker::ContainerSpec* out) {
            return FloorSpec(*fn_, image, o_.shim_path, run_label_, address, out);
          },
          o_.sample_timeout_ms);
      if (!docker_run_argv_.empty()) {
        docker_run_ = std::make_unique<DockerRun>(&loop_, docker_run_argv_, o_.payload);
      }
      DescribeSeries(spec);
      round_ = -o_.warmups;
      RunRound();
    });
  }

  void DescribeSeries(const docker::ContainerSpec& spec) {
    bool shim = InjectsShim(fn_->mode);
    Series e;
    e.key = kEphemera;
    e.label = "ephemera cold";
    e.what = "POST " + r_->config.endpoint + "/2015-03-31/functions/" + fn_->name +
             "/invocations with body " + o_.payload +
             " over a keep-alive libcurl connection; time from sending to the whole reply; "
             "phases from its Server-Timing header (\"client\" = latency - total). Kept if "
             "HTTP 200, no X-Amz-Function-Error, and Server-Timing has create and start "
             "(a cold start).";
    Series f;
    f.key = kRawFloor;
    f.label = "raw Docker floor";
    f.what =
        "Docker API (libcurl on the same kind of loop as the daemon, unix socket, API "
        "1.41): POST /containers/create with the daemon's spec for " +
        fn_->name + " (image " + spec.image + ", network " + spec.network_mode + ", memory " +
        std::to_string(fn_->memory_mb) + " MB, the same environment" +
        (shim ? ", the shim bind " + spec.binds.front() + " and entrypoint " + kShimMountPoint
              : ", no shim (mode " + std::string(registry::ShimModeName(fn_->mode)) + ")") +
        ", command " + floor_spec_text_ +
        ") -> POST /wait?condition=next-exit until its headers arrive -> POST /start -> "
        "the first GET /2018-06-01/runtime/invocation/next on a plain listener of the "
        "benchmark (AWS_LAMBDA_RUNTIME_API points at it). Never answered; the container is "
        "then force-removed (not timed). Phases: create; start = wait registered + start "
        "call; init = start returned -> /next.";
    r_->series.push_back(std::move(e));
    r_->series.push_back(std::move(f));
    if (!docker_run_argv_.empty()) {
      Series d;
      d.key = kDockerRun;
      d.label = "docker run --rm";
      d.what = "`" + Join(docker_run_argv_) + "` with " + o_.payload +
               " on stdin; time from spawning the CLI to its exit (the CLI waits for the "
               "container's removal). Kept if it exits 0.";
      r_->series.push_back(std::move(d));
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
      return StartSweep();
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
    if (key == kEphemera) {
      client_->Invoke(fn_->name, o_.payload, [this, record](ProbeResult r) {
        std::string id = r.sample.request_id;
        record(std::move(r));
        Settle(id.empty() ? "" : "ephemera.request=" + id, [this] { RunNextInRound(); });
      });
    } else if (key == kRawFloor) {
      floor_->Run(record, [this] { RunNextInRound(); });
    } else {
      docker_run_->Run([this, record](ProbeResult r) {
        record(std::move(r));
        Settle("ephemera.bench=" + run_label_, [this] { RunNextInRound(); });
      });
    }
  }

  void Record(const std::string& key, ProbeResult r, bool warmup) {
    Series* s = SeriesOf(key);
    bool kept = !warmup && r.kind == ProbeResult::Kind::kCold;
    progress_.Tick((warmup ? "warm-up " : "") + s->label, r.sample.latency_ms, kept || warmup);
    if (warmup) {
      ++s->rejects.warmups_discarded;
      if (r.kind != ProbeResult::Kind::kCold) s->rejects.Note("warm-up: " + r.message);
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

  // ---- Stage 4: the concurrency sweep ----
  //
  // Each level runs in blocks that alternate between the two series (E R E R ... or
  // R E R E ..., which one first alternating by level), so a burst of other work on the
  // machine lands on both. A block holds at least 4 x concurrency samples (ramp-up and
  // drain stay a small part of it), so high levels get fewer, longer blocks. A block starts
  // on a settled engine; the level's wall time is the sum of its blocks'.

  struct Block {
    size_t level;  // index into r_->sweep
    int count;
  };

  void StartSweep() {
    if (o_.sweep_samples <= 0) return Cleanup();
    const int n = o_.sweep_samples;
    for (size_t li = 0; li < o_.sweep_levels.size(); ++li) {
      int c = o_.sweep_levels[li];
      size_t e = r_->sweep.size();
      for (const char* key : {kEphemera, kRawFloor}) {
        SweepLevel l;
        l.series = key;
        l.concurrency = c;
        r_->sweep.push_back(std::move(l));
      }
      int block = std::min(n, std::max(4 * c, (n + 3) / 4));
      for (int b = 0, done = 0; done < n; ++b, done += block) {
        int count = std::min(block, n - done);
        bool ephemera_first = (b + static_cast<int>(li)) % 2 == 0;
        plan_.push_back({ephemera_first ? e : e + 1, count});
        plan_.push_back({ephemera_first ? e + 1 : e, count});
      }
    }
    block_ = 0;
    RunBlock();
  }

  void RunBlock() {
    if (aborted_ || block_ >= plan_.size()) return Cleanup();
    started_ = answered_ = disposed_ = in_flight_ = 0;
    block_first_ = block_last_ = 0;
    Launch();
  }

  SweepLevel& Level() { return r_->sweep[plan_[block_].level]; }
  int BlockCount() const { return plan_[block_].count; }

  void Launch() {
    SweepLevel& l = Level();
    while (!aborted_ && in_flight_ < l.concurrency && started_ < BlockCount()) {
      ++started_;
      ++in_flight_;
      if (block_first_ == 0) block_first_ = MonotonicMs();
      int index = l.next_index++;
      if (l.series == kEphemera) {
        client_->Invoke(fn_->name, o_.payload, [this, index](ProbeResult r) {
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
                   r.sample.latency_ms, r.kind == ProbeResult::Kind::kCold);
    if (r.kind == ProbeResult::Kind::kCold) {
      r.sample.index = index;
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
    std::string filter =
        Level().series == kEphemera
            ? (o_.endpoint.empty() ? "ephemera.daemon=" + std::to_string(daemon_pid_)
                                   : "ephemera.function=" + fn_->name)
            : "ephemera.bench=" + run_label_;
    // The next block only on a quiet engine, from a fresh loop turn.
    Settle(filter, [this] {
      ++block_;
      Later(0, [this] { RunBlock(); });
    });
  }

  // ---- Stage 5: leave nothing behind ----

  void Cleanup() {
    progress_.Finish();
    RemoveLabelled("ephemera.bench=" + run_label_, [this] { StopDaemon(); });
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
    if (!daemon_running_) return Done();
    uv_process_kill(daemon_proc_.get(), SIGTERM);
    daemon_exit_timer_ = std::make_unique<Timer>(&loop_);
    daemon_exit_timer_->Start(30000, [this] {
      r_->notes.push_back("the daemon did not stop within 30 s of SIGTERM; killed");
      if (daemon_running_) uv_process_kill(daemon_proc_.get(), SIGKILL);
    });
  }

  void OnDaemonExit(int64_t status, int signal) {
    daemon_running_ = false;
    if (daemon_exit_timer_) daemon_exit_timer_->Stop();
    daemon_proc_.Close();
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

  bool stopping_expected() const { return daemon_exit_timer_ != nullptr; }

  void Done() {
    // Containers of our daemon that it did not remove (it should have, on SIGTERM).
    std::string filter =
        o_.endpoint.empty() ? "ephemera.daemon=" + std::to_string(daemon_pid_) : "";
    auto finish = [this] {
      r_->config.duration_s = (MonotonicMs() - run_t0_) / 1000.0;
      r_->environment.emplace_back("load_avg_end", LoadAverage());
      docker_run_.reset();
      floor_.reset();
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
    if (daemon_running_ && !stopping_expected()) {
      RemoveLabelled("ephemera.bench=" + run_label_, [this] { StopDaemon(); });
      return;
    }
    client_.reset();
    floor_.reset();
    docker_run_.reset();
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
  std::unique_ptr<DockerRun> docker_run_;
  std::vector<std::string> docker_run_argv_;
  std::string floor_spec_text_;
  Progress progress_;
  std::vector<std::string> order_;
  int round_ = 0;
  size_t pos_ = 0;
  std::vector<Block> plan_;
  size_t block_ = 0;
  int started_ = 0, answered_ = 0, disposed_ = 0, in_flight_ = 0;
  double block_first_ = 0, block_last_ = 0;
  int unsettled_notes_ = 0;
  // The daemon.
  UvHandle<uv_process_t> daemon_proc_;
  std::vector<std::string> daemon_args_;
  int daemon_pid_ = 0;
  bool daemon_running_ = false;
  int daemon_log_fd_ = -1;
  std::unique_ptr<Timer> daemon_exit_timer_;
  double health_deadline_ = 0;
  bool aborted_ = false;
  bool interrupted_ = false;
  UvHandle<uv_signal_t> sigint_, sigterm_;
  Status fatal_;
};

}  // namespace

Status RunBenchmark(const BenchOptions& options, RunResult* result) {
  result->environment = CollectEnvironment(options.docker_cli, "", options.source_dir);
  Runner runner(options, result);
  Status s = runner.Run();
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
