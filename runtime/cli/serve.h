// runtime/cli/serve.h: `ephemera serve`, the daemon's wiring.
//
// Builds the loop, the registry, the Docker client, the invoker and the public
// API; reaps leftover containers; serves until SIGINT/SIGTERM; then stops
// accepting, cancels what is in flight, removes our containers, closes every
// handle and checks that uv_loop_close() returns 0.
// Thread: the calling thread becomes the loop thread. Depends on everything.
#pragma once

#include <string>

namespace ephemera::cli {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 9000;
  std::string registry_path = "registry/functions.json";
  std::string state_path;       // "" = in memory only
  std::string shim_path;        // "" = next to the ephemera binary
  std::string docker_endpoint;  // "" = DOCKER_HOST or /var/run/docker.sock
  uint64_t init_timeout_ms = 10000;
  int max_concurrency = 64;
  int max_starts = 0;  // container starts in flight at once; 0 = the scheduler's default
};

// Returns the process exit code.
int Serve(const ServeOptions& options);

}  // namespace ephemera::cli
