// runtime/sandbox/container_spec.h: the container an execution environment runs in.
//
// One function decides what `docker create` gets for an environment: the image, the
// command (the function's, or the image's ENTRYPOINT + CMD), the shim injection for the
// auto, exec and http modes (read-only bind mount + entrypoint override), the Lambda
// environment variables (docs/protocols.md section 1), labels (the environment's id,
// never a request id: one environment may serve many invocations), network mode, memory
// limit and the hardening of the function's security settings (capabilities dropped,
// no-new-privileges, pids and open-files limits, read-only root with a tmpfs /tmp, a
// non-root user unless the image or the spec names one; an image that names root keeps root). The
// environment uses it, and so does the benchmark's raw Docker floor, so both measure the very same
// container. Thread: any (pure). Depends on: registry, docker (types only).
#pragma once

#include <string>

#include "registry/registry.h"
#include "runtime/core/status.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::sandbox {

// Where the shim appears inside every container it is injected into.
inline constexpr char kShimMountPoint[] = "/opt/ephemera/shim";

struct ContainerParams {
  std::string runtime_api_address;  // "127.0.0.1:<port>" -> AWS_LAMBDA_RUNTIME_API
  std::string environment_id;
  std::string shim_path;  // absolute host path
  uint64_t init_timeout_ms = 10000;
  std::string region = "us-east-1";
  std::string instance_label;  // ephemera.daemon label value
  int http_port = 0;  // http mode with spec http_port 0: the port picked for this environment
  // Isolated environments (network "isolated"): the holder whose network namespace the
  // container joins, and the host folder holding the environment's unix sockets
  // (runtime.sock, fwd-<port>.sock), bind-mounted read-only at kRuntimeDirMountPoint.
  std::string holder_id;
  std::string runtime_dir;
  // "NAME=value" entries the daemon adds (SandboxOptions::daemon_environment), placed
  // before the function's own variables.
  std::vector<std::string> daemon_env;
  // Isolated environments: the host services forwarded into the namespace ("host:port",
  // the spec's `forward` and the daemon's own, one per port; Forwards()).
  std::vector<std::string> forwards;
};

// The spec's `forward` entries then `extra`, one per port (the first entry of a port wins:
// each port has one socket, fwd-<port>.sock), as "host:port"; invalid entries dropped.
std::vector<std::string> Forwards(const registry::FunctionSpec& fn,
                                  const std::vector<std::string>& extra);

// Where an isolated environment finds its sockets, and the address its shim relays.
inline constexpr char kRuntimeDirMountPoint[] = "/run/ephemera";
inline constexpr char kIsolatedRuntimeApi[] = "127.0.0.1:9001";

// True for functions that run in a network namespace of their own.
bool IsIsolated(const registry::FunctionSpec& fn);

// The user a function runs as when neither its spec nor its image names one: Lambda runs
// functions as a non-root user too.
inline constexpr char kDefaultUser[] = "993:993";

// True for the modes where the daemon injects the shim (auto, exec, http).
bool InjectsShim(registry::ShimMode mode);
// Whether this function's containers get the shim: the modes above, and passthrough when
// isolated (the shim then only relays the Runtime API into the namespace).
bool InjectsShim(const registry::FunctionSpec& fn);

// A TCP port on 127.0.0.1 that nothing listens on right now (0 if none could be
// found). Used for http-mode functions that let the daemon choose their port.
int PickFreeLoopbackPort();

// Fills `out`. Fails (InvalidArgument) only when a shim mode has nothing to run:
// no command in the spec and none in the image.
Status BuildContainerSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                          const ContainerParams& params, docker::ContainerSpec* out);

}  // namespace ephemera::sandbox
