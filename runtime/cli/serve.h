// runtime/cli/serve.h: `ephemera serve`, the daemon's wiring.
//
// Builds the loop, the registry, the Docker client, the invoker and the public
// API; reaps leftover containers; serves until SIGINT/SIGTERM; then stops
// accepting, cancels what is in flight, removes our containers, closes every
// handle and checks that uv_loop_close() returns 0.
// Thread: the calling thread becomes the loop thread. Depends on everything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ephemera::cli {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 9000;
  std::string registry_path = "registry/functions.json";
  std::string state_path;       // "" = in memory only
  std::string shim_path;        // "" = next to the ephemera binary
  std::string docker_endpoint;  // "" = DOCKER_HOST or /var/run/docker.sock
  // Redis (runtime/events): durable Event invocations, retries, destinations, dead
  // letters and invocation records. The daemon starts whether Redis answers or not.
  std::string redis_url;  // "" = REDIS_URL or redis://127.0.0.1:6379
  std::string redis_prefix = "ephemera:";
  uint64_t redis_timeout_ms = 2000;
  std::string daemon_id;       // "" = <hostname>:<port>, or <hostname>-<pid> on port 0
  int event_concurrency = 32;  // 0 = accept Event invocations, run none here
  std::vector<uint64_t> event_retry_delays_ms = {60000, 120000};
  uint64_t event_service_retry_ms = 1000;
  uint64_t event_claim_idle_ms = 30000;
  size_t event_max_queued = 100000;
  size_t records_max = 10000;
  uint64_t records_max_age_s = 86400;
  uint64_t init_timeout_ms = 10000;
  int max_concurrency = 64;
  int max_starts = 0;      // container starts in flight at once; 0 = the scheduler's default
  bool precreate = false;  // cold functions: create the next container ahead
  long engine_timeout_ms = 60000;  // bounded engine calls (all but wait, attach, events)
};

// Returns the process exit code.
int Serve(const ServeOptions& options);

}  // namespace ephemera::cli
