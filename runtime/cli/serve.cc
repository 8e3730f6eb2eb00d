#include "runtime/cli/serve.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "registry/registry.h"
#include "runtime/api/lambda_api.h"
#include "runtime/core/log.h"
#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"
#include "runtime/events/events.h"
#include "runtime/redis/redis_url.h"
#include "runtime/sandbox/container_spec.h"
#include "runtime/scheduler/image_watcher.h"
#include "runtime/scheduler/scheduler.h"
#include "runtime/store/store_users.h"

namespace ephemera::cli {
namespace {

std::string DefaultShimPath() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "ephemera-shim";
  exe[n] = '\0';
  std::string path(exe);
  return path.substr(0, path.rfind('/') + 1) + "ephemera-shim";
}

// Everything the daemon owns, torn down in reverse order of construction.
struct Daemon {
  explicit Daemon(uv_loop_t* l) : loop(l) {}
  uv_loop_t* loop;
  std::unique_ptr<registry::Registry> registry;
  std::unique_ptr<docker::DockerClient> docker;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<scheduler::ImageWatcher> watcher;
  std::unique_ptr<sandbox::HolderPool> holders;
  std::string runtime_dir;                 // isolated environments' socket folders, removed at exit
  std::unique_ptr<events::Events> events;  // Redis: durable events, records
  std::unique_ptr<api::LambdaApi> api;
  // The data store's per-function Redis users; outlives the scheduler, which asks it for
  // containers' variables and tells it the functions.
  std::unique_ptr<store::StoreUsers> store;
  UvHandle<uv_signal_t> sigint, sigterm;
  std::unique_ptr<Timer> teardown;
  bool stopping = false;

  void Stop(const char* why) {
    if (stopping) {
      LOG_WARN("serve", "second %s: exiting without waiting for containers to be removed", why);
      _exit(130);
    }
    stopping = true;
    LOG_INFO("serve", "%s: stopping; %zu invocation(s) in flight, %zu environment(s)", why,
             scheduler->in_flight(), scheduler->environments());
    api->Close();
    if (events) events->Stop();  // no more reads; outcomes still recorded
    watcher.reset();             // no more image events: nothing will be reused
    // The teardown runs on a later loop turn: never free an object inside its own
    // callback (docs/style.md rule 4).
    teardown = std::make_unique<Timer>(loop);
    // Event outcomes that came in during the shutdown are written before the teardown:
    // Drain() answers once no Redis write is outstanding (bounded by the Redis timeout).
    auto drain_events = [this](std::function<void()> next) {
      if (events) {
        events->Drain(std::move(next));
      } else {
        next();
      }
    };
    scheduler->Shutdown([this, drain_events] {
      holders->Shutdown([this, drain_events] {
        drain_events([this] {
          // No container runs any more: this daemon's store passwords can go.
          store->Shutdown([this] {
            teardown->Start(0, [this] {
              LOG_INFO("serve", "all containers removed; closing");
              api.reset();
              events.reset();  // drained already: nothing of it is outstanding
              scheduler.reset();
              holders.reset();
              docker.reset();
              store.reset();
              sigint.Close();
              sigterm.Close();
              teardown->Close();
            });
          });
        });
      });
    });
  }
};

// "" follows every (re)connect of the engine's event stream: the engine answers again, so
// whatever it kept of ours while it was unreachable can go, and after a restart every
// namespace holder went with it.
void OnImageEvent(Daemon& d, const std::string& image) {
  // The first connect finds a clean engine (leftovers were reaped before the ready line).
  if (image.empty() && d.watcher->connections() > 1) d.scheduler->ReapOrphans();
  d.scheduler->OnImageChanged(image);
}

// The daemon's name among the consumers of the shared Event queue: stable across restarts
// when the port is, so a restarted daemon resumes its own pending events at once.
std::string DaemonId(const ServeOptions& o) {
  if (!o.daemon_id.empty()) return o.daemon_id;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  if (o.port != 0) return std::string(host) + ":" + std::to_string(o.port);
  return std::string(host) + "-" + std::to_string(getpid());
}

// Durable Event invocations and invocation records in Redis (docs/architecture.md
// "Durable Event invocations"); Event invocations run through the scheduler.
std::unique_ptr<events::Events> MakeEvents(Daemon& d, const ServeOptions& o,
                                           const redis::RedisUrl& url) {
  events::EventsOptions eo;
  eo.url = url;
  eo.redis_timeout_ms = o.redis_timeout_ms;
  eo.queue.keys.prefix = o.redis_prefix;
  eo.queue.daemon_id = DaemonId(o);
  eo.queue.concurrency = o.event_concurrency;
  eo.queue.retry_delays_ms = o.event_retry_delays_ms;
  eo.queue.service_retry_ms = o.event_service_retry_ms;
  eo.queue.claim_idle_ms = o.event_claim_idle_ms;
  eo.queue.max_queued = o.event_max_queued;
  eo.queue.retention.max_count = o.records_max;
  eo.queue.retention.max_age_ms = o.records_max_age_s * 1000;
  events::Runner runner;
  runner.find = [&d](const std::string& name) { return d.registry->Find(name); };
  runner.invoke = [&d](sandbox::InvokeRequest r, sandbox::InvokeDone done) {
    return d.scheduler->Invoke(std::move(r), std::move(done));
  };
  runner.cancel = [&d](uint64_t h) {
    if (d.scheduler) d.scheduler->Cancel(h);
  };
  LOG_INFO("serve",
           "Event invocations and invocation records in Redis at %s (prefix %s, daemon id %s)",
           url.Redacted().c_str(), o.redis_prefix.c_str(), eo.queue.daemon_id.c_str());
  return std::make_unique<events::Events>(d.loop, std::move(eo), std::move(runner));
}

}  // namespace

int Serve(const ServeOptions& o) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  Daemon d(&loop);
  redis::RedisUrl redis_url;
  if (Status s = redis::ParseRedisUrl(o.redis_url.empty() ? redis::kDefaultRedisUrl : o.redis_url,
                                      &redis_url);
      !s.ok()) {
    std::fprintf(stderr, "ephemera serve: --redis: %s\n", s.message().c_str());
    uv_loop_close(&loop);
    return 2;
  }

  if (!o.state_path.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(o.state_path).parent_path(), ec);
    if (ec) {
      std::fprintf(stderr, "ephemera serve: cannot create the folder of the state file %s: %s\n",
                   o.state_path.c_str(), ec.message().c_str());
      uv_loop_close(&loop);
      return 2;
    }
  }
  if (Status s = registry::Registry::Open(o.registry_path, o.state_path, &d.registry); !s.ok()) {
    std::fprintf(stderr, "ephemera serve: %s\n", s.message().c_str());
    uv_loop_close(&loop);
    return 2;
  }
  std::string shim = o.shim_path.empty() ? DefaultShimPath() : o.shim_path;
  char resolved[PATH_MAX];
  if (realpath(shim.c_str(), resolved) == nullptr || access(resolved, X_OK) != 0) {
    std::fprintf(
        stderr,
        "ephemera serve: the shim %s is missing or not executable (build it: cmake --build build, "
        "or pass --shim PATH)\n",
        shim.c_str());
    uv_loop_close(&loop);
    return 2;
  }
  shim = resolved;

  Status err;
  std::string endpoint =
      o.docker_endpoint.empty() ? docker::DockerClient::DefaultSocketPath() : o.docker_endpoint;
  d.docker = docker::DockerClient::Create(&loop, endpoint, &err);
  if (!d.docker) {
    std::fprintf(stderr, "ephemera serve: %s\n", err.message().c_str());
    uv_loop_close(&loop);
    return 2;
  }
  // Isolated environments get a folder each under here for their sockets: a host path
  // the engine can bind-mount, private to this daemon.
  const char* run_base = std::getenv("EPHEMERA_RUNTIME_DIR");
  d.runtime_dir = std::string(run_base != nullptr && *run_base != '\0'
                                  ? run_base
                                  : (access("/run", W_OK) == 0 ? "/run/ephemera" : "/tmp")) +
                  "/daemon-" + std::to_string(getpid());
  {
    std::error_code ec;
    std::filesystem::create_directories(d.runtime_dir, ec);
    if (ec) {
      std::fprintf(stderr, "ephemera serve: cannot create %s: %s\n", d.runtime_dir.c_str(),
                   ec.message().c_str());
      uv_loop_close(&loop);
      return 2;
    }
    chmod(d.runtime_dir.c_str(), 0755);
  }
  // The data store (registry/README.md "store"): functions that declare store prefixes
  // get a Redis user of their own, made through this connection.
  store::StoreOptions sto;
  sto.url = redis_url;
  d.store = std::make_unique<store::StoreUsers>(&loop, sto);
  d.store->Start();
  sandbox::HolderOptions ho;
  ho.shim_path = shim;
  ho.instance_label = std::to_string(getpid());
  // As many ready as starts may be in flight: a burst of cold starts or pool refills
  // finds a namespace for each at once instead of waiting for new holders.
  ho.spare = o.max_starts > 0 ? o.max_starts : scheduler::SchedulerOptions{}.max_starts_in_flight;
  // A burst at 4 callers lends out up to twice the spares; making them mid-burst cost each
  // of its starts engine time (bench/README.md, "Where the time goes"). Once isolated
  // functions are called, the pool grows to what it keeps at most, while the daemon is idle.
  ho.ahead = 4 * ho.spare;
  ho.engine_idle = [&d] {
    const auto* s = d.scheduler.get();
    return s != nullptr && s->in_flight() == 0 && s->waiting() == 0 && s->starts_in_flight() == 0 &&
           s->disposing() == 0;
  };
  d.holders = std::make_unique<sandbox::HolderPool>(&loop, d.docker.get(), ho);
  d.docker->set_request_timeout_ms(o.engine_timeout_ms);
  scheduler::SchedulerOptions so;
  so.sandbox.runtime_dir = d.runtime_dir;
  so.sandbox.holders = d.holders.get();
  so.sandbox.shim_path = shim;
  so.sandbox.init_timeout_ms = o.init_timeout_ms;
  so.sandbox.instance_label = std::to_string(getpid());
  so.sandbox.daemon_environment = [&d](const registry::FunctionSpec& fn) {
    return d.store ? d.store->EnvironmentFor(fn, sandbox::kRuntimeDirMountPoint)
                   : std::vector<std::string>{};
  };
  so.sandbox.daemon_forwards = [&d](const registry::FunctionSpec& fn) {
    std::string target = d.store ? d.store->ForwardFor(fn) : std::string();
    return target.empty() ? std::vector<std::string>{} : std::vector<std::string>{target};
  };
  so.max_concurrency = o.max_concurrency;
  if (o.max_starts > 0) so.max_starts_in_flight = o.max_starts;
  so.precreate = o.precreate;
  d.scheduler = std::make_unique<scheduler::Scheduler>(&loop, d.docker.get(), so);
  d.scheduler->set_functions_listener(
      [&d](const std::vector<std::shared_ptr<const registry::FunctionSpec>>& specs) {
        if (d.store) d.store->Sync(specs);
      });
  // The image's ID decides what runs: the engine's image events keep the image cache honest
  // and drain environments of a rebuilt or removed tag (docs/architecture.md "Image identity").
  d.watcher = std::make_unique<scheduler::ImageWatcher>(
      &loop, d.docker.get(), [&d](const std::string& image) { OnImageEvent(d, image); });
  d.scheduler->set_image_cache_trusted([&d] { return d.watcher && d.watcher->healthy(); });
  d.api = std::make_unique<api::LambdaApi>(&loop, d.registry.get(), d.scheduler.get());
  d.events = MakeEvents(d, o, redis_url);
  d.api->set_events(d.events.get());
  d.events->Start();
  d.scheduler->set_invoke_handler([&d](const std::shared_ptr<http::HttpExchange>& ex,
                                       const std::string& ref, const std::string& caller) {
    if (d.api) d.api->InvokeFromFunction(ex, ref, caller);
  });
  if (Status s = d.api->Listen(o.host, o.port); !s.ok()) {
    std::fprintf(stderr, "ephemera serve: %s\n", s.message().c_str());
    d.api.reset();
    d.events.reset();
    d.watcher.reset();
    d.scheduler.reset();
    d.holders.reset();
    d.docker.reset();
    d.store.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }

  auto on_signal = [](uv_signal_t* h, int signum) {
    static_cast<Daemon*>(h->data)->Stop(signum == SIGINT ? "SIGINT" : "SIGTERM");
  };
  if (d.sigint.Init(&loop, uv_signal_init) == 0) {
    d.sigint.get()->data = &d;
    uv_signal_start(d.sigint.get(), on_signal, SIGINT);
  }
  if (d.sigterm.Init(&loop, uv_signal_init) == 0) {
    d.sigterm.get()->data = &d;
    uv_signal_start(d.sigterm.get(), on_signal, SIGTERM);
  }

  // The ready line is printed once the engine has answered and what dead daemons
  // left behind is gone, so whoever waits for it finds a clean engine.
  auto announce_now = [&d, &o, endpoint, shim] {
    std::printf(
        "ephemera: listening on http://%s:%d (%zu functions from %s and %s; docker %s; shim %s)\n",
        o.host.c_str(), d.api->port(), d.registry->List().size(), o.registry_path.c_str(),
        o.state_path.empty() ? "no state file" : o.state_path.c_str(), endpoint.c_str(),
        shim.c_str());
    std::fflush(stdout);
  };
  // ... and once Redis has answered (or refused) its first connection, so an Event
  // invocation right after the ready line is not refused only because it came too early.
  // Event invocations are consumed from then on too: the engine is clean of leftovers.
  auto announce = [&d, announce_now] {
    d.events->StartConsuming();
    d.events->WhenFirstAttemptDone(announce_now);
  };
  d.docker->Ping([&d, announce](Status s) {
    if (!s.ok()) {
      LOG_WARN("serve", "%s; invocations will fail with 503 until it is reachable",
               s.message().c_str());
      d.watcher->Start();  // reconnects with backoff until the engine answers
      d.scheduler->SyncFunctions(d.registry->List());  // pools retry until it answers
      announce();
      return;
    }
    d.scheduler->ReapLeftovers([&d, announce](Status rs, size_t n) {
      if (!rs.ok()) {
        LOG_WARN("serve", "could not list leftover containers: %s", rs.message().c_str());
      }
      if (n > 0) LOG_INFO("serve", "removed %zu leftover container(s) of daemons that are gone", n);
      // Pools start filling once the engine is clean.
      d.watcher->Start();
      d.scheduler->SyncFunctions(d.registry->List());
      announce();
    });
  });

  uv_run(&loop, UV_RUN_DEFAULT);
  {
    std::error_code ec;
    std::filesystem::remove_all(d.runtime_dir, ec);
  }
  int rc = uv_loop_close(&loop);
  if (rc != 0) {
    LOG_ERROR("serve", "uv_loop_close returned %s: a handle was left open", uv_err_name(rc));
    return 1;
  }
  LOG_INFO("serve", "stopped cleanly");
  return 0;
}

}  // namespace ephemera::cli
