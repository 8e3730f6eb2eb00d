// BuildContainerSpec: what `docker create` gets for each shim mode.
#include "runtime/sandbox/container_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ephemera::sandbox {
namespace {

using registry::FunctionSpec;
using registry::ShimMode;

bool HasEnv(const docker::ContainerSpec& spec, const std::string& entry) {
  return std::find(spec.env.begin(), spec.env.end(), entry) != spec.env.end();
}

ContainerParams Params() {
  ContainerParams p;
  p.runtime_api_address = "127.0.0.1:41234";
  p.environment_id = "8476a536-e9f4-41e8-9739-2dfe598c3fcd";
  p.shim_path = "/opt/build/bin/ephemera-shim";
  p.instance_label = "4242";
  return p;
}

FunctionSpec Fn(ShimMode mode) {
  FunctionSpec fn;
  fn.name = "f";
  fn.image = "img:latest";
  fn.mode = mode;
  fn.memory_mb = 256;
  fn.timeout_s = 7;
  fn.environment = {{"GREETING", "hi"}};
  fn.network = "host";  // most tests here are about the host network; isolated is below
  return fn;
}

docker::ImageConfig Image() {
  docker::ImageConfig image;
  image.entrypoint = {"/app/run"};
  image.cmd = {"--port", "80"};
  return image;
}

TEST(ContainerSpec, ExecModeInjectsTheShimWithTheImageCommandAsArguments) {
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(Fn(ShimMode::kExec), Image(), Params(), &spec).ok());
  EXPECT_EQ(spec.entrypoint, std::vector<std::string>{"/opt/ephemera/shim"});
  EXPECT_EQ(spec.cmd, (std::vector<std::string>{"/app/run", "--port", "80"}));
  EXPECT_EQ(spec.binds,
            std::vector<std::string>{"/opt/build/bin/ephemera-shim:/opt/ephemera/shim:ro"});
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_MODE=exec"));
}

TEST(ContainerSpec, LambdaEnvironmentLabelsAndLimits) {
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(Fn(ShimMode::kExec), Image(), Params(), &spec).ok());
  for (const char* e :
       {"AWS_LAMBDA_RUNTIME_API=127.0.0.1:41234", "AWS_LAMBDA_FUNCTION_NAME=f",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
        "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand", "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/f",
        "AWS_REGION=us-east-1", "LAMBDA_TASK_ROOT=/var/task", "GREETING=hi"}) {
    EXPECT_TRUE(HasEnv(spec, e)) << e;
  }
  EXPECT_EQ(spec.labels.at("ephemera.managed"), "1");
  EXPECT_EQ(spec.labels.at("ephemera.function"), "f");
  EXPECT_EQ(spec.labels.at("ephemera.environment"), Params().environment_id);
  EXPECT_EQ(spec.labels.at("ephemera.daemon"), "4242");
  EXPECT_EQ(spec.network_mode, "host");
  EXPECT_EQ(spec.memory_bytes, 256LL << 20);
  // The image's PATH and the like are not overridden.
  for (const auto& e : spec.env) EXPECT_NE(e.rfind("PATH=", 0), 0u) << e;
}

TEST(ContainerSpec, InvokeEndpointAndDaemonVariablesFollowTheNetwork) {
  // Host network: the environment's own listener, the same address as the Runtime API.
  ContainerParams p = Params();
  p.daemon_env = {"EPHEMERA_STORE_URL=redis://u:p@127.0.0.1:6379"};
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(Fn(ShimMode::kNative), Image(), p, &spec).ok());
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_INVOKE_ENDPOINT=127.0.0.1:41234"));
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_STORE_URL=redis://u:p@127.0.0.1:6379"));
  // Isolated: 127.0.0.1:9001 where the shim relays it, else the socket itself.
  FunctionSpec iso = Fn(ShimMode::kNative);
  iso.network = "isolated";
  p.holder_id = "holder";
  p.runtime_dir = "/run/ephemera/daemon-1/env";
  ASSERT_TRUE(BuildContainerSpec(iso, Image(), p, &spec).ok());
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_INVOKE_ENDPOINT=unix:/run/ephemera/runtime.sock"));
  iso.mode = ShimMode::kExec;
  ASSERT_TRUE(BuildContainerSpec(iso, Image(), p, &spec).ok());
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_INVOKE_ENDPOINT=127.0.0.1:9001"));
  // bridge cannot reach the host's loopback: no endpoint.
  FunctionSpec bridge = Fn(ShimMode::kExec);
  bridge.network = "bridge";
  ASSERT_TRUE(BuildContainerSpec(bridge, Image(), Params(), &spec).ok());
  for (const auto& e : spec.env) EXPECT_NE(e.rfind("EPHEMERA_INVOKE_ENDPOINT=", 0), 0u) << e;
}

TEST(ContainerSpec, AFunctionNamingNoNetworkIsIsolatedAndGetsItsForwards) {
  FunctionSpec fn;  // as the registry makes it when the spec names no network
  fn.name = "f";
  fn.image = "img:latest";
  fn.mode = ShimMode::kExec;
  fn.forward = {"5432", "db.local:6379"};
  ContainerParams p = Params();
  docker::ContainerSpec spec;
  // An isolated container joins a holder: without one it cannot be built.
  EXPECT_FALSE(BuildContainerSpec(fn, Image(), p, &spec).ok());
  p.holder_id = "holder";
  p.runtime_dir = "/run/ephemera/daemon-1/env";
  // The daemon adds Redis for a store; a port the spec forwards already keeps its entry.
  p.forwards = Forwards(fn, {"127.0.0.1:6380", "10.0.0.1:5432", "[::1]:7000", "bad"});
  EXPECT_EQ(p.forwards, (std::vector<std::string>{"127.0.0.1:5432", "db.local:6379",
                                                  "127.0.0.1:6380", "[::1]:7000"}));
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), p, &spec).ok());
  EXPECT_EQ(spec.network_mode, "container:holder");
  EXPECT_TRUE(HasEnv(spec,
                     "EPHEMERA_FORWARD=5432=/run/ephemera/fwd-5432.sock,"
                     "6379=/run/ephemera/fwd-6379.sock,6380=/run/ephemera/fwd-6380.sock,"
                     "7000=/run/ephemera/fwd-7000.sock"));
  EXPECT_TRUE(HasEnv(spec, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"));
}

TEST(ContainerSpec, CommandReplacesEntrypointAndCmdArgsReplaceOnlyCmd) {
  FunctionSpec fn = Fn(ShimMode::kExec);
  fn.command = {"/echo", "--stdio"};
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), Params(), &spec).ok());
  EXPECT_EQ(spec.cmd, (std::vector<std::string>{"/echo", "--stdio"}));

  fn.command.clear();
  fn.args = {"--verbose"};
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), Params(), &spec).ok());
  EXPECT_EQ(spec.cmd, (std::vector<std::string>{"/app/run", "--verbose"}));
}

TEST(ContainerSpec, PassthroughAndNativeInjectNothing) {
  for (ShimMode mode : {ShimMode::kPassthrough, ShimMode::kNative}) {
    docker::ContainerSpec spec;
    ASSERT_TRUE(BuildContainerSpec(Fn(mode), Image(), Params(), &spec).ok());
    EXPECT_TRUE(spec.binds.empty());
    EXPECT_TRUE(spec.entrypoint.empty()) << "the image's own entrypoint runs";
    EXPECT_TRUE(spec.cmd.empty());
    EXPECT_TRUE(HasEnv(spec, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:41234"));
    for (const auto& e : spec.env) EXPECT_NE(e.rfind("EPHEMERA_MODE=", 0), 0u);
  }
  FunctionSpec fn = Fn(ShimMode::kPassthrough);
  fn.command = {"sh", "-c", "exit 3"};
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), Params(), &spec).ok());
  EXPECT_EQ(spec.entrypoint, std::vector<std::string>{"sh"});
  EXPECT_EQ(spec.cmd, (std::vector<std::string>{"-c", "exit 3"}));
}

TEST(ContainerSpec, HttpModeWithPortZeroGetsThePickedPort) {
  FunctionSpec fn = Fn(ShimMode::kHttp);
  fn.http_port = 0;
  ContainerParams p = Params();
  p.http_port = 40123;
  docker::ContainerSpec spec;
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), p, &spec).ok());
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_MODE=http"));
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_HTTP_PORT=40123"));
  EXPECT_TRUE(HasEnv(spec, "PORT=40123"));

  fn.http_port = 5000;
  ASSERT_TRUE(BuildContainerSpec(fn, Image(), p, &spec).ok());
  EXPECT_TRUE(HasEnv(spec, "EPHEMERA_HTTP_PORT=5000"));
  EXPECT_FALSE(HasEnv(spec, "PORT=5000"));
}

TEST(ContainerSpec, ShimModeWithNothingToRunIsRefusedNamingTheImage) {
  docker::ContainerSpec spec;
  Status s = BuildContainerSpec(Fn(ShimMode::kExec), docker::ImageConfig{}, Params(), &spec);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("img:latest"), std::string::npos) << s.message();
}

TEST(ContainerSpec, PickFreeLoopbackPortGivesAPort) {
  int port = PickFreeLoopbackPort();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace ephemera::sandbox
