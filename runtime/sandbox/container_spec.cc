#include "runtime/sandbox/container_spec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ephemera::sandbox {

using registry::ShimMode;

bool InjectsShim(ShimMode mode) {
  return mode == ShimMode::kAuto || mode == ShimMode::kExec || mode == ShimMode::kHttp;
}

bool IsIsolated(const registry::FunctionSpec& fn) {
  return fn.network == "isolated";
}

bool InjectsShim(const registry::FunctionSpec& fn) {
  return InjectsShim(fn.mode) || (IsIsolated(fn) && fn.mode == ShimMode::kPassthrough);
}

int PickFreeLoopbackPort() {
  // Bind to port 0 and read back what the kernel chose; a few microseconds of
  // synchronous syscalls, no I/O wait.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

namespace {

std::vector<std::string> LambdaEnvironment(const registry::FunctionSpec& fn,
                                           const ContainerParams& p) {
  bool isolated = !p.runtime_dir.empty();
  std::string runtime_dir = kRuntimeDirMountPoint;
  std::vector<std::string> env = {
      std::string("AWS_LAMBDA_RUNTIME_API=") +
          (isolated ? kIsolatedRuntimeApi : p.runtime_api_address),
      "AWS_LAMBDA_FUNCTION_NAME=" + fn.name,
      "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(fn.memory_mb),
      "AWS_LAMBDA_FUNCTION_TIMEOUT=" + std::to_string(fn.timeout_s),
      "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
      "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + fn.name,
      "AWS_LAMBDA_LOG_STREAM_NAME=$LATEST/" + p.environment_id,
      "AWS_REGION=" + p.region,
      "AWS_DEFAULT_REGION=" + p.region,
      "LAMBDA_TASK_ROOT=/var/task",
      "LAMBDA_RUNTIME_DIR=/var/runtime",
      "TZ=UTC",
  };
  // Where the function sends Invoke calls for other functions (by name; docs/protocols.md
  // section 2): its own Runtime API listener, which serves the Invoke route knowing the
  // caller. On the host network that is AWS_LAMBDA_RUNTIME_API itself; in an isolated
  // namespace the shim relays 127.0.0.1:9001, and without a shim (native) only the socket
  // is there. bridge and none cannot reach 127.0.0.1 of the host: no endpoint.
  if (isolated) {
    env.push_back(InjectsShim(fn)
                      ? std::string("EPHEMERA_INVOKE_ENDPOINT=") + kIsolatedRuntimeApi
                      : "EPHEMERA_INVOKE_ENDPOINT=unix:" + runtime_dir + "/runtime.sock");
  } else if (fn.network == "host") {
    env.push_back("EPHEMERA_INVOKE_ENDPOINT=" + p.runtime_api_address);
  }
  if (isolated) {
    // The shim (or a native function's library) reaches the daemon through the socket;
    // the program inside sees the Runtime API on 127.0.0.1:9001 as in Lambda.
    env.push_back("EPHEMERA_RUNTIME_SOCKET=" + runtime_dir + "/runtime.sock");
    if (InjectsShim(fn)) env.push_back(std::string("EPHEMERA_PROXY_LISTEN=") + kIsolatedRuntimeApi);
    if (!p.forwards.empty()) {
      std::string fwd;
      for (const std::string& target : p.forwards) {
        std::string port = target.substr(target.rfind(':') + 1);
        fwd += (fwd.empty() ? "" : ",") + port + "=" + runtime_dir + "/fwd-" + port + ".sock";
      }
      env.push_back("EPHEMERA_FORWARD=" + fwd);
    }
  }
  if (InjectsShim(fn)) {
    env.push_back(std::string("EPHEMERA_MODE=") + registry::ShimModeName(fn.mode));
    env.push_back("EPHEMERA_INIT_TIMEOUT_MS=" + std::to_string(p.init_timeout_ms));
    if (fn.mode == ShimMode::kHttp) {
      int port = fn.http_port != 0 ? fn.http_port : p.http_port;
      env.push_back("EPHEMERA_HTTP_PORT=" + std::to_string(port));
      env.push_back("EPHEMERA_HTTP_PATH=" + fn.http_path);
      if (fn.http_port == 0) env.push_back("PORT=" + std::to_string(port));
    }
  }
  env.insert(env.end(), p.daemon_env.begin(), p.daemon_env.end());
  for (const auto& [k, v] : fn.environment) env.push_back(k + "=" + v);
  return env;
}

// Hardening on by default, each part opted out of by the function's security settings
// (registry/README.md says why one would). None of it costs start time (docs/decisions.md).
void ApplySecurity(const registry::SecuritySettings& sec, const docker::ImageConfig& image,
                   docker::ContainerSpec* spec) {
  if (sec.drop_capabilities) spec->cap_drop = {"ALL"};
  spec->cap_add = sec.cap_add;
  if (sec.no_new_privileges) spec->security_opt = {"no-new-privileges"};
  spec->pids_limit = sec.pids_limit;
  spec->nofile = sec.nofile;
  if (sec.read_only_root) {
    spec->readonly_rootfs = true;
    // exec as in Lambda (functions unpack and run tools from /tmp); Docker's tmpfs
    // default would add noexec.
    spec->tmpfs["/tmp"] =
        "rw,exec,nosuid,nodev,size=" + std::to_string(sec.tmp_size_mb) + "m,mode=1777";
  }
  if (!sec.user.empty()) {
    spec->user = sec.user == "root" ? "0:0" : sec.user;
  } else if (image.user.empty()) {
    // The image names no user (so Docker would run it as root): run it unprivileged. An
    // image that names a user, root included, gets that user.
    spec->user = kDefaultUser;
  }
}

}  // namespace

std::vector<std::string> Forwards(const registry::FunctionSpec& fn,
                                  const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  std::vector<int> ports;
  auto add = [&](const std::string& entry) {
    registry::ForwardTarget t;
    if (!registry::ParseForward(entry, &t).ok()) return;
    for (int p : ports) {
      if (p == t.port) return;
    }
    ports.push_back(t.port);
    bool v6 = t.host.find(':') != std::string::npos && t.host.front() != '[';
    out.push_back((v6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port));
  };
  for (const std::string& entry : fn.forward) add(entry);
  for (const std::string& entry : extra) add(entry);
  return out;
}

Status BuildContainerSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                          const ContainerParams& p, docker::ContainerSpec* out) {
  docker::ContainerSpec spec;
  spec.image = fn.image;
  spec.name = "ephemera-" + fn.name + "-" + p.environment_id.substr(0, 12);
  spec.labels = {{"ephemera.managed", "1"},
                 {"ephemera.function", fn.name},
                 {"ephemera.environment", p.environment_id},
                 {"ephemera.daemon", p.instance_label}};
  spec.env = LambdaEnvironment(fn, p);
  if (IsIsolated(fn)) {
    if (p.holder_id.empty() || p.runtime_dir.empty()) {
      return InvalidArgument("function " + fn.name +
                             ": an isolated environment needs a namespace holder and a "
                             "runtime folder");
    }
    spec.network_mode = "container:" + p.holder_id;
  } else {
    spec.network_mode = fn.network;
  }
  spec.memory_bytes = static_cast<int64_t>(fn.memory_mb) << 20;
  spec.working_dir = fn.working_dir;
  ApplySecurity(fn.security, image, &spec);

  // What the function runs: the spec's command, else the image's ENTRYPOINT + CMD
  // (with the spec's args replacing CMD).
  std::vector<std::string> argv = fn.command;
  if (argv.empty()) {
    argv = image.entrypoint;
    const auto& cmd = fn.args.empty() ? image.cmd : fn.args;
    argv.insert(argv.end(), cmd.begin(), cmd.end());
  }
  if (IsIsolated(fn)) {
    spec.binds.push_back(p.runtime_dir + ":" + kRuntimeDirMountPoint + ":ro");
  }
  if (fn.mode == ShimMode::kHttp && fn.http_port == 0 && p.http_port == 0) {
    return InvalidArgument("function " + fn.name +
                           ": no free port on 127.0.0.1 for its web service");
  }
  if (InjectsShim(fn)) {
    if (argv.empty()) {
      return InvalidArgument("function " + fn.name + ": image " + fn.image +
                             " has no ENTRYPOINT or CMD and the registry gives no \"command\"");
    }
    spec.binds.push_back(p.shim_path + ":" + kShimMountPoint + ":ro");
    spec.entrypoint = {kShimMountPoint};
    spec.cmd = std::move(argv);
  } else if (!fn.command.empty()) {
    spec.entrypoint = {fn.command.front()};
    spec.cmd.assign(fn.command.begin() + 1, fn.command.end());
  } else if (!fn.args.empty()) {
    spec.cmd = fn.args;
  }
  *out = std::move(spec);
  return Status::Ok();
}

}  // namespace ephemera::sandbox
