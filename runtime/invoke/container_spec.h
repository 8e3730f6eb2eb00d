// runtime/invoke/container_spec.h: the container a function runs in.
//
// One function decides what `docker create` gets for an invocation: the image,
// the command (the function's, or the image's ENTRYPOINT + CMD), the shim
// injection for exec and http modes (read-only bind mount + entrypoint
// override), the Lambda environment variables (PROTOCOLS.md §1), labels,
// network mode and memory limit. The cold path uses it, and so does the
// benchmark's raw Docker floor, so both measure the very same container.
// Thread: any (pure). Depends on: registry, docker (types only).
#pragma once

#include <string>

#include "registry/registry.h"
#include "runtime/core/status.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::invoke {

// Where the shim appears inside every container it is injected into.
inline constexpr char kShimMountPoint[] = "/opt/ephemera/shim";

struct ContainerParams {
  std::string runtime_api_address;  // "127.0.0.1:<port>" -> AWS_LAMBDA_RUNTIME_API
  std::string request_id;
  std::string shim_path;  // absolute host path
  uint64_t init_timeout_ms = 10000;
  std::string region = "us-east-1";
  std::string instance_label;  // ephemera.daemon label value
  int http_port = 0;  // http mode with spec http_port 0: the port picked for this environment
};

// True for the modes where the daemon injects the shim (exec, http).
bool InjectsShim(registry::ShimMode mode);

// A TCP port on 127.0.0.1 that nothing listens on right now (0 if none could be
// found). Used for http-mode functions that let the daemon choose their port.
int PickFreeLoopbackPort();

// Fills `out`. Fails (InvalidArgument) only when a shim mode has nothing to run:
// no command in the spec and none in the image.
Status BuildContainerSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                          const ContainerParams& params, docker::ContainerSpec* out);

}  // namespace ephemera::invoke
