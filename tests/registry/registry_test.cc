// tests/registry/registry_test.cc: the registry's validation, files and Lambda mapping.
// Pure functions plus files in a fresh temporary directory; no loop, no sockets, no sleeps.
#include "registry/registry.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ephemera::registry {
namespace {

using json::Json;

Json MustParse(std::string_view text) {
  Json j = json::Parse(text);
  EXPECT_NE(j, nullptr) << "test JSON does not parse: " << text;
  return j;
}

// Parses {"f": <body>} the way the manifest would, under the name "f".
Status ParseOne(std::string_view body, FunctionSpec* out = nullptr) {
  Json obj = MustParse(body);
  FunctionSpec spec;
  Status s = ParseFunctionSpec("f", obj.get(), "m.json", &spec);
  if (out != nullptr) *out = spec;
  return s;
}

// Asserts that `body` is rejected and the message names file, function and field.
void ExpectFieldError(std::string_view body, std::string_view field, std::string_view also = "") {
  Status s = ParseOne(body);
  ASSERT_FALSE(s.ok()) << body;
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  std::string want = "m.json: function \"f\": field \"" + std::string(field) + "\": ";
  EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  if (!also.empty()) {
    EXPECT_NE(s.message().find(also), std::string::npos) << s.message();
  }
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ephemera-registry-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

constexpr char kSmallManifest[] = R"({"functions": {
  "alpha": {"image": "img/alpha", "mode": "exec"},
  "beta": {"image": "img/beta:v2", "mode": "native", "timeout": 10}
}})";

FunctionSpec MakeSpec(std::string name) {
  FunctionSpec s;
  s.name = std::move(name);
  s.image = "ephemera/echo:latest";
  return s;
}

// ---- names ----

TEST(Registry, NameAcceptsLettersDigitsDashUnderscore) {
  EXPECT_TRUE(ValidateName("a").ok());
  EXPECT_TRUE(ValidateName("Echo-exec_2").ok());
  EXPECT_TRUE(ValidateName(std::string(64, 'x')).ok());
}

TEST(Registry, NameRejectsEmptyTooLongAndBadCharacters) {
  EXPECT_FALSE(ValidateName("").ok());
  Status s = ValidateName(std::string(65, 'x'));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("65"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("64"), std::string::npos) << s.message();
  for (const char* bad : {"a.b", "a b", "a/b", "a:b", "é", "a$"}) {
    Status st = ValidateName(bad);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  }
  EXPECT_NE(ValidateName("a.b").message().find("\".\""), std::string::npos);
}

// ---- spec fields ----

TEST(Registry, SpecMinimalGetsDefaults) {
  FunctionSpec s;
  ASSERT_TRUE(ParseOne(R"({"image": "ephemera/echo"})", &s).ok());
  EXPECT_EQ(s.name, "f");
  EXPECT_EQ(s.image, "ephemera/echo:latest");
  EXPECT_EQ(s.timeout_s, 3);
  EXPECT_EQ(s.memory_mb, 128);
  EXPECT_EQ(s.mode, ShimMode::kAuto);
  EXPECT_EQ(s.policy, Policy{});
  EXPECT_EQ(s.policy.kind, PolicyKind::kCold);
  EXPECT_EQ(s.network, "isolated");
  EXPECT_STREQ(kDefaultNetwork, "isolated");
  EXPECT_EQ(s.http_port, 8080);
  EXPECT_EQ(s.http_path, "/");
  EXPECT_EQ(s.concurrency, 0);
  EXPECT_EQ(s.queue_size, 100);
  EXPECT_EQ(s.queue_timeout_s, 10);
  EXPECT_TRUE(s.forward.empty());
  EXPECT_TRUE(s.command.empty());
  // Hardened unless the spec opts out.
  EXPECT_TRUE(s.security.read_only_root);
  EXPECT_EQ(s.security.tmp_size_mb, 512);
  EXPECT_TRUE(s.security.drop_capabilities);
  EXPECT_TRUE(s.security.cap_add.empty());
  EXPECT_TRUE(s.security.no_new_privileges);
  EXPECT_EQ(s.security.pids_limit, 256);
  EXPECT_EQ(s.security.nofile, 1024);
  EXPECT_EQ(s.security.user, "");
  EXPECT_EQ(s.security, SecuritySettings{});
}

TEST(Registry, SpecAllFieldsParse) {
  FunctionSpec s;
  Status st = ParseOne(R"({"image": "localhost:5000/web", "mode": "http", "policy": "cold",
      "timeout": 900, "memory": 10240, "environment": {"GREETING": "hi", "x_1": ""},
      "command": ["/srv", "--port", "9000"], "working_dir": "/app", "http_port": 9000,
      "http_path": "/events", "network": "bridge", "concurrency": 4, "description": "d",
      "role": "r", "comment": "ignored"})",
                       &s);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(s.image, "localhost:5000/web:latest");  // the port is not a tag
  EXPECT_EQ(s.mode, ShimMode::kHttp);
  EXPECT_EQ(s.timeout_s, 900);
  EXPECT_EQ(s.memory_mb, 10240);
  EXPECT_EQ(s.environment.at("GREETING"), "hi");
  EXPECT_EQ(s.environment.at("x_1"), "");
  EXPECT_EQ(s.command, (std::vector<std::string>{"/srv", "--port", "9000"}));
  EXPECT_EQ(s.working_dir, "/app");
  EXPECT_EQ(s.http_port, 9000);
  EXPECT_EQ(s.http_path, "/events");
  EXPECT_EQ(s.network, "bridge");
  EXPECT_EQ(s.concurrency, 4);
  EXPECT_EQ(s.description, "d");
  EXPECT_EQ(s.role, "r");
}

TEST(Registry, ImageKeepsTagsAndDigests) {
  FunctionSpec s;
  ASSERT_TRUE(ParseOne(R"({"image": "a/b:1.2"})", &s).ok());
  EXPECT_EQ(s.image, "a/b:1.2");
  const std::string digest = "sha256:" + std::string(64, 'a');
  ASSERT_TRUE(ParseOne(R"({"image": "busybox@)" + digest + "\"}", &s).ok());
  EXPECT_EQ(s.image, "busybox@" + digest);  // a digest needs no tag
  ASSERT_TRUE(ParseOne(R"({"image": "busybox:1.36@)" + digest + "\"}", &s).ok());
  EXPECT_EQ(s.image, "busybox:1.36@" + digest);
  ExpectFieldError(R"({"image": "busybox@sha256:abcd"})", "image", "64 lowercase hex digits");
  ASSERT_TRUE(ParseOne(R"({"image": "reg:5000/a/b:x"})", &s).ok());
  EXPECT_EQ(s.image, "reg:5000/a/b:x");
}

TEST(Registry, ImageIsRequiredAndMustBeAReference) {
  ExpectFieldError(R"({"mode": "exec"})", "image", "required");
  ExpectFieldError(R"({"image": 5})", "image", "must be a string (got 5)");
  ExpectFieldError(R"({"image": ""})", "image");
  ExpectFieldError(R"({"image": "a b"})", "image");
  ExpectFieldError(R"({"image": ":tag"})", "image");
}

TEST(Registry, TimeoutMustBeAnIntegerInRange) {
  ExpectFieldError(R"({"image": "i", "timeout": "abc"})", "timeout",
                   "must be an integer 1..900 (got \"abc\")");
  ExpectFieldError(R"({"image": "i", "timeout": 0})", "timeout", "(got 0)");
  ExpectFieldError(R"({"image": "i", "timeout": 901})", "timeout");
  ExpectFieldError(R"({"image": "i", "timeout": 1.5})", "timeout", "(got 1.5)");
  ExpectFieldError(R"({"image": "i", "timeout": true})", "timeout");
  ExpectFieldError(R"({"image": "i", "timeout": null})", "timeout");
}

TEST(Registry, MemoryMustBeAnIntegerInRange) {
  ExpectFieldError(R"({"image": "i", "memory": 127})", "memory", "128..10240");
  ExpectFieldError(R"({"image": "i", "memory": 10241})", "memory");
  ExpectFieldError(R"({"image": "i", "memory": "256"})", "memory");
}

TEST(Registry, ModeAndPolicyAreChecked) {
  FunctionSpec s;
  for (auto [text, mode] : {std::pair{"auto", ShimMode::kAuto},
                            {"exec", ShimMode::kExec},
                            {"http", ShimMode::kHttp},
                            {"native", ShimMode::kNative},
                            {"passthrough", ShimMode::kPassthrough}}) {
    ASSERT_TRUE(ParseOne(std::string(R"({"image": "i", "mode": ")") + text + "\"}", &s).ok());
    EXPECT_EQ(s.mode, mode);
    EXPECT_STREQ(ShimModeName(mode), text);
  }
  ExpectFieldError(R"({"image": "i", "mode": "lambda"})", "mode", "(got \"lambda\")");
  ExpectFieldError(R"({"image": "i", "mode": 1})", "mode");
  ExpectFieldError(R"({"image": "i", "mode": "Auto"})", "mode", "\"auto\"");
  ExpectFieldError(R"({"image": "i", "policy": "hot"})", "policy", "(got \"hot\")");
  ExpectFieldError(R"({"image": "i", "policy": 1})", "policy");
  for (PolicyKind kind : {PolicyKind::kCold, PolicyKind::kWarm, PolicyKind::kPool}) {
    PolicyKind back = PolicyKind::kCold;
    ASSERT_TRUE(ParsePolicyKind(PolicyKindName(kind), &back).ok());
    EXPECT_EQ(back, kind);
  }
  EXPECT_STREQ(PolicyKindName(PolicyKind::kWarm), "warm");
  EXPECT_STREQ(PolicyKindName(PolicyKind::kPool), "pool");
  // The rule "http_port / http_path only in mode http" holds for auto too.
  ExpectFieldError(R"({"image": "i", "mode": "auto", "http_port": 9000})", "http_port",
                   "(mode is \"auto\")");
}

TEST(Registry, EnvironmentKeysAndValuesAreChecked) {
  ExpectFieldError(R"({"image": "i", "environment": []})", "environment");
  ExpectFieldError(R"({"image": "i", "environment": {"1X": "v"}})", "environment",
                   "[a-zA-Z][a-zA-Z0-9_]*");
  ExpectFieldError(R"({"image": "i", "environment": {"A-B": "v"}})", "environment");
  ExpectFieldError(R"({"image": "i", "environment": {"A": 1}})", "environment", "must be a string");
  for (const char* reserved : {"AWS_LAMBDA_RUNTIME_API", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                               "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_NAME"}) {
    ExpectFieldError(std::string(R"({"image": "i", "environment": {")") + reserved + R"(": "v"}})",
                     "environment", "reserved");
  }
  ExpectFieldError(R"({"image": "i", "environment": {"EPHEMERA_MODE": "http"}})", "environment",
                   "ephemera");
  EXPECT_TRUE(IsReservedEnvName("_HANDLER"));
  EXPECT_FALSE(IsReservedEnvName("HOME"));
}

TEST(Registry, CommandAndArgsAreNonEmptyStringArrays) {
  ExpectFieldError(R"({"image": "i", "command": []})", "command", "non-empty array");
  ExpectFieldError(R"({"image": "i", "command": "sh -c x"})", "command");
  ExpectFieldError(R"({"image": "i", "command": ["sh", 1]})", "command");
  ExpectFieldError(R"({"image": "i", "command": [""]})", "command", "empty");
  ExpectFieldError(R"({"image": "i", "args": {}})", "args");
  ExpectFieldError(R"({"image": "i", "command": ["a"], "args": ["b"]})", "args");
}

TEST(Registry, OtherFieldsAreChecked) {
  ExpectFieldError(R"({"image": "i", "working_dir": "rel"})", "working_dir", "absolute");
  ExpectFieldError(R"({"image": "i", "working_dir": 1})", "working_dir");
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_port": -1})", "http_port");
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_port": 65536})", "http_port");
  // 0 means: the daemon picks a free port for each environment.
  EXPECT_TRUE(ParseOne(R"({"image": "i", "mode": "http", "http_port": 0})").ok());
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_port": 65536})", "http_port");
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_path": "x"})", "http_path");
  // It goes into the request line the shim writes: no spaces, no CR/LF.
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_path": "/a b"})", "http_path",
                   "spaces or control characters");
  ExpectFieldError(R"({"image": "i", "mode": "http", "http_path": "/a\r\nX-Evil: 1"})", "http_path",
                   "control characters");
  ExpectFieldError(R"({"image": "i", "http_port": 9000})", "http_port", "only used in mode");
  ExpectFieldError(R"({"image": "i", "network": "overlay"})", "network", "\"overlay\"");
  ExpectFieldError(R"({"image": "i", "concurrency": -1})", "concurrency");
  ExpectFieldError(R"({"image": "i", "description": 3})", "description");
  ExpectFieldError(R"({"image": "i", "description": ")" + std::string(257, 'd') + "\"}",
                   "description", "256");
}

TEST(Registry, NetworkAcceptsIsolatedHostBridgeNone) {
  FunctionSpec s;
  for (const char* n : {"isolated", "host", "bridge", "none"}) {
    ASSERT_TRUE(ParseOne(std::string(R"({"image": "i", "network": ")") + n + "\"}", &s).ok()) << n;
    EXPECT_EQ(s.network, n);
  }
  ExpectFieldError(R"({"image": "i", "network": "Isolated"})", "network",
                   "must be \"isolated\", \"host\", \"bridge\" or \"none\"");
}

// ---- image references ----

TEST(Registry, ImageReferencesFollowDockerGrammar) {
  const std::string digest = "@sha256:" + std::string(64, '0');
  struct Good {
    std::string ref, stored;
  };
  for (const Good& g : std::vector<Good>{
           {"busybox", "busybox:latest"},
           {"ephemera/echo:latest", "ephemera/echo:latest"},
           {"localhost:5000/x/y:1.0", "localhost:5000/x/y:1.0"},
           {"localhost/x", "localhost/x:latest"},
           {"registry.example.com/team/app", "registry.example.com/team/app:latest"},
           {"10.0.0.2:5000/app:v2", "10.0.0.2:5000/app:v2"},
           {"[::1]:5000/app", "[::1]:5000/app:latest"},
           {"My.Registry/app", "My.Registry/app:latest"},  // a registry host may be upper case
           {"ab/c.d_e__f-g--h/i:T_1.x-y", "ab/c.d_e__f-g--h/i:T_1.x-y"},
           {"app" + digest, "app" + digest},
           {"localhost:5000/app:1" + digest, "localhost:5000/app:1" + digest},
           {"a:" + std::string(128, 't'), "a:" + std::string(128, 't')},
           {std::string(248, 'a'), std::string(248, 'a') + ":latest"},  // 255 with the tag
       }) {
    FunctionSpec s;
    Status st = ParseOne(R"({"image": )" + json::Quote(g.ref) + "}", &s);
    ASSERT_TRUE(st.ok()) << g.ref << ": " << st.message();
    EXPECT_EQ(s.image, g.stored);
    EXPECT_TRUE(ValidateImageReference(g.ref).ok()) << g.ref;
    EXPECT_TRUE(ValidateImageReference(s.image).ok()) << s.image;  // stored form re-validates
  }
  struct Bad {
    std::string ref, why;
  };
  for (const Bad& b : std::vector<Bad>{
           {"", "empty"},
           {"Ephemera", "lowercase"},
           {"ephemera/Echo", "path component \"Echo\""},
           {"ephemera/echo app", "space"},
           {" busybox", "space"},
           {"$(id)", "path component \"$(id)\""},
           {"busybox;id", "path component"},
           {"a:b:c", "path component \"a:b\""},
           {"busybox:", "the tag after ':' is empty"},
           {"busybox:-x", "tag \"-x\""},
           {"busybox:" + std::string(129, 't'), "limit is 128"},
           {":tag", "repository name is empty"},
           {"/busybox", "empty path component"},
           {"a//b", "empty path component"},
           {"a/", "empty path component"},
           {"a-", "path component \"a-\""},
           {"a..b", "path component"},
           {"a___b", "path component"},
           {"localhost:0/x", "registry \"localhost:0\""},
           {"localhost:99999/x", "registry"},
           {"-bad.host/x", "registry"},
           {"my_registry.local/x", "registry \"my_registry.local\""},  // '_' is no host
           {"app@sha256:abc", "64 lowercase hex"},
           {"app@sha256:" + std::string(64, 'A'), "64 lowercase hex"},
           {"app@md5:" + std::string(64, '0'), "sha256"},
           {"app@", "digest"},
           {"busybox\t", "control character"},
           {"caf\xc3\xa9", "non-ASCII"},
           {std::string(249, 'a'), "255"},  // 256 with ":latest"
           {"a/" + std::string(252, 'b') + ":t", "255"},
       }) {
    ExpectFieldError(R"({"image": )" + json::Quote(b.ref) + "}", "image", b.why);
    Status st = ValidateImageReference(b.ref);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << b.ref;
    EXPECT_NE(st.message().find(b.why), std::string::npos) << st.message();
  }
}

// ---- policy and queue ----

TEST(Registry, PolicyStringsAndObjectsParse) {
  struct Case {
    const char* policy;
    Policy want;
  };
  for (const Case& c : {
           Case{R"("cold")", Policy{}},
           Case{R"("warm")", Policy{PolicyKind::kWarm, 60, 0}},
           Case{R"({"type": "cold"})", Policy{}},
           Case{R"({"type": "warm"})", Policy{PolicyKind::kWarm, 60, 0}},
           Case{R"({"type": "warm", "idle_ttl": 30})", Policy{PolicyKind::kWarm, 30, 0}},
           Case{R"({"type": "warm", "idle_ttl": 1})", Policy{PolicyKind::kWarm, 1, 0}},
           Case{R"({"type": "warm", "idle_ttl": 3600})", Policy{PolicyKind::kWarm, 3600, 0}},
           Case{R"({"type": "pool", "size": 2})", Policy{PolicyKind::kPool, 60, 2}},
           Case{R"({"size": 100, "type": "pool"})", Policy{PolicyKind::kPool, 60, 100}},
       }) {
    FunctionSpec s;
    Status st = ParseOne(std::string(R"({"image": "i", "policy": )") + c.policy + "}", &s);
    ASSERT_TRUE(st.ok()) << c.policy << ": " << st.message();
    EXPECT_EQ(s.policy, c.want) << c.policy;
  }
  // A pool as large as the concurrency limit is fine; unlimited concurrency allows any size.
  EXPECT_TRUE(
      ParseOne(R"({"image": "i", "concurrency": 5, "policy": {"type": "pool", "size": 5}})").ok());
}

TEST(Registry, PolicyErrorsNameTheField) {
  auto policy = [](std::string_view p, std::string_view extra = "") {
    return std::string(R"({"image": "i", )") + std::string(extra) + R"("policy": )" +
           std::string(p) + "}";
  };
  ExpectFieldError(policy(R"("pool")"), "policy", "\"pool\" needs a size");
  ExpectFieldError(policy(R"("pool")"), "policy", R"({"type": "pool", "size": N})");
  ExpectFieldError(policy(R"("Warm")"), "policy", "(got \"Warm\")");
  ExpectFieldError(policy(R"(["warm"])"), "policy", "must be \"cold\", \"warm\" or an object");
  ExpectFieldError(policy(R"({"type": "hot"})"), "policy", "type must be \"cold\"");
  ExpectFieldError(policy(R"({"type": 1})"), "policy", "type must be a string");
  ExpectFieldError(policy(R"({"idle_ttl": 30})"), "policy", "needs a \"type\"");
  ExpectFieldError(policy(R"({"type": "warm", "ttl": 30})"), "policy", "unknown key \"ttl\"");
  ExpectFieldError(policy(R"({"type": "warm", "idle_ttl": 0})"), "policy",
                   "idle_ttl must be an integer 1..3600 (got 0)");
  ExpectFieldError(policy(R"({"type": "warm", "idle_ttl": 3601})"), "policy", "1..3600");
  ExpectFieldError(policy(R"({"type": "warm", "idle_ttl": "30"})"), "policy", "idle_ttl");
  ExpectFieldError(policy(R"({"type": "warm", "idle_ttl": 30.5})"), "policy", "idle_ttl");
  ExpectFieldError(policy(R"({"type": "pool"})"), "policy", "needs a \"size\" 1..100");
  ExpectFieldError(policy(R"({"type": "pool", "size": 0})"), "policy",
                   "pool size must be an integer 1..100 (got 0)");
  ExpectFieldError(policy(R"({"type": "pool", "size": 101})"), "policy", "1..100");
  ExpectFieldError(policy(R"({"type": "pool", "size": 2, "idle_ttl": 30})"), "policy",
                   "idle_ttl is only used with type \"warm\" (type is \"pool\")");
  ExpectFieldError(policy(R"({"type": "warm", "size": 2})"), "policy",
                   "size is only used with type \"pool\" (type is \"warm\")");
  ExpectFieldError(policy(R"({"type": "cold", "idle_ttl": 60})"), "policy", "idle_ttl");
  ExpectFieldError(policy(R"({"type": "warm", "type": "cold"})"), "policy", "twice");
  ExpectFieldError(policy(R"({"type": "pool", "size": 8})", R"("concurrency": 5, )"), "policy",
                   "pool size 8 is above the function's concurrency limit 5");

  // The same rules hold for a spec built in C++ and handed to Registry::Create.
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", "", &r).ok());
  FunctionSpec s = MakeSpec("p");
  s.policy = Policy{PolicyKind::kPool, 60, 0};
  EXPECT_NE(r->Create(s).message().find("pool size must be an integer 1..100 (got 0)"),
            std::string::npos);
  s.policy = Policy{PolicyKind::kCold, 60, 3};
  EXPECT_NE(r->Create(s).message().find("size is only used with type \"pool\""), std::string::npos);
  s.policy = Policy{PolicyKind::kCold, 30, 0};
  EXPECT_NE(r->Create(s).message().find("idle_ttl is only used with type \"warm\""),
            std::string::npos);
  s.policy = Policy{PolicyKind::kPool, 60, 8};
  s.concurrency = 5;
  EXPECT_NE(r->Create(s).message().find("pool size 8 is above the function's concurrency limit 5"),
            std::string::npos);
  EXPECT_TRUE(r->List().empty());
}

TEST(Registry, PoolAboveConcurrencyNamesFileFunctionAndField) {
  TempDir dir;
  std::string path = dir.File("functions.json");
  WriteFile(path, R"({"functions": {"x": {"image": "i", "concurrency": 5,
                                           "policy": {"type": "pool", "size": 8}}}})");
  std::unique_ptr<Registry> r;
  Status st = Registry::Open(path, "", &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), path +
                              ": function \"x\": field \"policy\": pool size 8 is above the "
                              "function's concurrency limit 5");
}

TEST(Registry, QueueFieldsAreChecked) {
  FunctionSpec s;
  ASSERT_TRUE(ParseOne(R"({"image": "i", "queue_size": 0, "queue_timeout": 900})", &s).ok());
  EXPECT_EQ(s.queue_size, 0);  // refuse at once with 429
  EXPECT_EQ(s.queue_timeout_s, 900);
  ASSERT_TRUE(ParseOne(R"({"image": "i", "queue_size": 10000, "queue_timeout": 1})", &s).ok());
  EXPECT_EQ(s.queue_size, 10000);
  EXPECT_EQ(s.queue_timeout_s, 1);
  ExpectFieldError(R"({"image": "i", "queue_size": -1})", "queue_size", "0..10000");
  ExpectFieldError(R"({"image": "i", "queue_size": 10001})", "queue_size", "(got 10001)");
  ExpectFieldError(R"({"image": "i", "queue_size": "5"})", "queue_size");
  ExpectFieldError(R"({"image": "i", "queue_timeout": 0})", "queue_timeout", "1..900 (got 0)");
  ExpectFieldError(R"({"image": "i", "queue_timeout": 901})", "queue_timeout");
  ExpectFieldError(R"({"image": "i", "queue_timeout_s": 5})", "queue_timeout_s", "unknown field");
}

// ---- security ----

TEST(Registry, SecurityFieldsParse) {
  FunctionSpec s;
  Status st = ParseOne(R"({"image": "i", "security": {"read_only_root": false,
      "drop_capabilities": false, "cap_add": ["NET_BIND_SERVICE", "CAP_SYS_PTRACE"],
      "no_new_privileges": false, "pids_limit": 0, "nofile": 65536, "user": "1000:1000"}})",
                       &s);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(s.security.read_only_root);
  EXPECT_EQ(s.security.tmp_size_mb, 512);
  EXPECT_FALSE(s.security.drop_capabilities);
  EXPECT_EQ(s.security.cap_add, (std::vector<std::string>{"NET_BIND_SERVICE", "CAP_SYS_PTRACE"}));
  EXPECT_FALSE(s.security.no_new_privileges);
  EXPECT_EQ(s.security.pids_limit, 0);
  EXPECT_EQ(s.security.nofile, 65536);
  EXPECT_EQ(s.security.user, "1000:1000");

  ASSERT_TRUE(ParseOne(R"({"image": "i", "security": {"tmp_size_mb": 10240, "pids_limit": 8,
      "nofile": 64}})",
                       &s)
                  .ok());
  EXPECT_TRUE(s.security.read_only_root);
  EXPECT_EQ(s.security.tmp_size_mb, 10240);
  EXPECT_EQ(s.security.pids_limit, 8);
  EXPECT_EQ(s.security.nofile, 64);
  ASSERT_TRUE(ParseOne(R"({"image": "i", "security": {}})", &s).ok());
  EXPECT_EQ(s.security, SecuritySettings{});
  for (const char* user : {"root", "nobody", "app_user", "www-data", "_svc", "0", "65534",
                           "1000:1000", "app:staff", "app:50", "4294967294"}) {
    ASSERT_TRUE(
        ParseOne(std::string(R"({"image": "i", "security": {"user": ")") + user + "\"}}", &s).ok())
        << user;
    EXPECT_EQ(s.security.user, user);
  }
}

TEST(Registry, SecurityErrorsNameTheMember) {
  auto sec = [](std::string_view body) {
    return std::string(R"({"image": "i", "security": )") + std::string(body) + "}";
  };
  ExpectFieldError(sec(R"(true)"), "security", "must be an object");
  ExpectFieldError(sec(R"({"readonly": true})"), "security", "unknown key \"readonly\"");
  ExpectFieldError(sec(R"({"read_only_root": "false"})"), "security.read_only_root",
                   "must be true or false (got \"false\")");
  ExpectFieldError(sec(R"({"read_only_root": 0})"), "security.read_only_root");
  ExpectFieldError(sec(R"({"tmp_size_mb": 0})"), "security.tmp_size_mb", "1..10240");
  ExpectFieldError(sec(R"({"tmp_size_mb": 10241})"), "security.tmp_size_mb");
  ExpectFieldError(sec(R"({"read_only_root": false, "tmp_size_mb": 64})"), "security.tmp_size_mb",
                   "only used with read_only_root true");
  ExpectFieldError(sec(R"({"drop_capabilities": null})"), "security.drop_capabilities");
  ExpectFieldError(sec(R"({"cap_add": "NET_ADMIN"})"), "security.cap_add", "array of strings");
  ExpectFieldError(sec(R"({"cap_add": ["net_admin"]})"), "security.cap_add", "[A-Z_]+");
  ExpectFieldError(sec(R"({"cap_add": ["NET ADMIN"]})"), "security.cap_add", "[A-Z_]+");
  ExpectFieldError(sec(R"({"cap_add": [""]})"), "security.cap_add", "[A-Z_]+");
  ExpectFieldError(sec(R"({"cap_add": ["ALL"]})"), "security.cap_add", "\"ALL\" is refused");
  ExpectFieldError(sec(R"({"cap_add": ["CAP_ALL"]})"), "security.cap_add", "is refused");
  ExpectFieldError(sec(R"({"cap_add": ["NET_FLY"]})"), "security.cap_add",
                   "not a Linux capability");
  ExpectFieldError(sec(R"({"cap_add": ["NET_ADMIN", "CAP_NET_ADMIN"]})"), "security.cap_add",
                   "appears twice");
  ExpectFieldError(sec(R"({"no_new_privileges": 1})"), "security.no_new_privileges");
  for (const char* bad : {"1", "7", "-1", "65537", "\"256\""}) {
    ExpectFieldError(sec(std::string(R"({"pids_limit": )") + bad + "}"), "security.pids_limit",
                     "must be 0 (unlimited) or an integer 8..65536");
  }
  ExpectFieldError(sec(R"({"nofile": 63})"), "security.nofile", "64..1048576");
  ExpectFieldError(sec(R"({"nofile": 1048577})"), "security.nofile");
  ExpectFieldError(sec(R"({"user": 1000})"), "security.user", "must be a string");
  for (const char* bad : {"a b", "1000:", ":1000", "a:b:c", "$(id)", "1abc", "4294967295", "-u",
                          "x/y", "toolongname_toolongname_toolongna"}) {
    ExpectFieldError(sec(std::string(R"({"user": )") + json::Quote(bad) + "}"), "security.user");
  }
  ExpectFieldError(sec(R"({"nofile": 100, "nofile": 200})"), "security.nofile", "twice");
}

// ---- forward ----

TEST(Registry, ForwardEntriesParse) {
  struct Case {
    const char* text;
    ForwardTarget want;
  };
  for (const Case& c : {
           Case{"6379", {"127.0.0.1", 6379}},
           Case{"1", {"127.0.0.1", 1}},
           Case{"127.0.0.1:5432", {"127.0.0.1", 5432}},
           Case{"10.1.2.3:65535", {"10.1.2.3", 65535}},
           Case{"db.local:5432", {"db.local", 5432}},
           Case{"localhost:80", {"localhost", 80}},
           Case{"[::1]:53", {"::1", 53}},
       }) {
    ForwardTarget t;
    Status st = ParseForward(c.text, &t);
    ASSERT_TRUE(st.ok()) << c.text << ": " << st.message();
    EXPECT_EQ(t, c.want) << c.text;
  }
  for (const char* bad : {"",           "0",          "65536",    "123456",    "x",
                          "host:",      ":80",        "host:0",   "host:http", "256.1.1.1:80",
                          "1.2.3:80",   "-h:80",      "a b:80",   "[::1]",     "[::1]80",
                          "[zz]:80",    "[:::::]:80", "6379/tcp", "+80",       "127.0.0.1:80:1",
                          "01.2.3.4:80"}) {
    ForwardTarget t;
    Status st = ParseForward(bad, &t);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << "accepted: " << bad;
  }
  FunctionSpec s;
  ASSERT_TRUE(ParseOne(R"({"image": "i", "forward": ["6379", "127.0.0.1:5432"]})", &s).ok());
  EXPECT_EQ(s.forward, (std::vector<std::string>{"6379", "127.0.0.1:5432"}));  // as written
  ASSERT_TRUE(ParseOne(R"({"image": "i", "forward": []})", &s).ok());
  EXPECT_TRUE(s.forward.empty());
  ExpectFieldError(R"({"image": "i", "forward": "6379"})", "forward", "array of strings");
  ExpectFieldError(R"({"image": "i", "forward": [6379]})", "forward", "array of strings");
  ExpectFieldError(R"({"image": "i", "forward": ["redis"]})", "forward", "\"redis\"");
  ExpectFieldError(R"({"image": "i", "forward": ["70000"]})", "forward", "1..65535");
  ExpectFieldError(R"({"image": "i", "forward": ["6379", "127.0.0.1:6379"]})", "forward",
                   "names 127.0.0.1:6379 again");
}

// ---- store ----

TEST(Registry, StorePrefixesParse) {
  FunctionSpec s;
  ASSERT_TRUE(ParseOne(R"({"image": "i"})", &s).ok());
  EXPECT_TRUE(s.store.prefixes.empty()) << "no store unless declared";
  ASSERT_TRUE(
      ParseOne(R"({"image": "i", "store": {"prefixes": ["order:*", "order-number", "a/b.c_d-*"]}})",
               &s)
          .ok());
  EXPECT_EQ(s.store.prefixes,
            (std::vector<std::string>{"order:*", "order-number", "a/b.c_d-*"}));  // as written
  for (const char* good : {"x", "x*", "order:*", "A9:_.-/*"}) {
    EXPECT_TRUE(ValidateStorePrefix(good).ok()) << good;
  }
  for (const char* bad : {"", "*", "**", "a*b", "a**", "o?der", "[ab]", "a b", "a\\*", "é"}) {
    EXPECT_FALSE(ValidateStorePrefix(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateStorePrefix(std::string(129, 'a')).ok());
  EXPECT_TRUE(ValidateStorePrefix(std::string(127, 'a') + "*").ok());
}

TEST(Registry, StoreErrorsNameTheMember) {
  ExpectFieldError(R"({"image": "i", "store": ["order:*"]})", "store", "must be an object");
  ExpectFieldError(R"({"image": "i", "store": {}})", "store.prefixes", "at least one");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": []}})", "store.prefixes",
                   "at least one");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": "order:*"}})", "store.prefixes",
                   "array of strings");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": ["*"]}})", "store.prefixes",
                   "names every key");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": ["a*b"]}})", "store.prefixes",
                   "at the end");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": ["a:*", "a:*"]}})", "store.prefixes",
                   "appears twice");
  ExpectFieldError(R"({"image": "i", "store": {"prefixes": ["a:*"], "channels": []}})", "store",
                   "unknown key \"channels\"");
  std::string many = R"({"image": "i", "store": {"prefixes": [)";
  for (int i = 0; i < 33; ++i)
    many += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\"";
  ExpectFieldError(many + "]}}", "store.prefixes", "at most 32");
}

TEST(Registry, CreateFunctionReadsStorePrefixes) {
  Json req = MustParse(R"({"FunctionName": "f", "Code": {"ImageUri": "i"},
      "Environment": {"Variables": {"EPHEMERA_STORE_PREFIXES": "order:*,stock:*", "K": "v"}}})");
  FunctionSpec s;
  Status st = SpecFromCreateFunction(req.get(), &s);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(s.store.prefixes, (std::vector<std::string>{"order:*", "stock:*"}));
  EXPECT_EQ(s.environment, (std::map<std::string, std::string>{{"K", "v"}}));
  Json bad = MustParse(R"({"FunctionName": "f", "Code": {"ImageUri": "i"},
      "Environment": {"Variables": {"EPHEMERA_STORE_PREFIXES": "order:*,*"}}})");
  st = SpecFromCreateFunction(bad.get(), &s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Environment.Variables.EPHEMERA_STORE_PREFIXES"), std::string::npos)
      << st.message();
  Json c = FunctionConfiguration(s);
  const cJSON* vars = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(c.get(), "Environment"), "Variables");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_STORE_PREFIXES"), "order:*,stock:*");
}

// ---- hostile strings ----

TEST(Registry, EnvironmentIsLimitedTo4KBInTotal) {
  // Keys plus values, all variables together, as in Lambda.
  std::string fits = R"({"image": "i", "environment": {"A": ")" + std::string(4095, 'v') + "\"}}";
  EXPECT_TRUE(ParseOne(fits).ok());
  std::string one_over =
      R"({"image": "i", "environment": {"AB": ")" + std::string(4095, 'v') + "\"}}";
  ExpectFieldError(one_over, "environment", "take 4097 bytes");
  ExpectFieldError(one_over, "environment", "4096 bytes in total");
  std::string many = R"({"image": "i", "environment": {)";
  for (int i = 0; i < 5; ++i) {
    many += (i ? ", " : "") + std::string("\"V") + std::to_string(i) + "\": \"" +
            std::string(1000, 'x') + "\"";
  }
  many += "}}";
  ExpectFieldError(many, "environment", "take 5010 bytes");

  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", "", &r).ok());
  FunctionSpec s = MakeSpec("big");
  s.environment["HUGE"] = std::string(5000, 'x');
  Status st = r->Create(s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4096"), std::string::npos) << st.message();
}

TEST(Registry, ContainsEscapedNulFindsWhatCJsonWouldCutShort) {
  EXPECT_FALSE(ContainsEscapedNul(""));
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "plain"})"));
  EXPECT_TRUE(ContainsEscapedNul(R"({"a": "x\u0000y"})"));
  EXPECT_TRUE(ContainsEscapedNul(R"({"a\u0000": "y"})"));  // in a key too
  EXPECT_TRUE(ContainsEscapedNul(R"(["\\\u0000"])"));      // an escaped backslash, then a NUL
  EXPECT_TRUE(ContainsEscapedNul(std::string_view("{\"a\": \"x\0y\"}", 12)));  // a raw 0 byte
  EXPECT_TRUE(ContainsEscapedNul(R"({"a": "\u00000"})"));  // a NUL, then the text "0"
  // The text after an escaped backslash is text, not an escape.
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "x\\u0000y"})"));
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "\\\\u0000"})"));
  // Other code points, hex digits in either case, are not NUL.
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "\u0001 \u0100 \u1000 \u000a \u000A \uD83D\uDE00"})"));
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "\u000"})"));  // too short to be an escape
  EXPECT_FALSE(ContainsEscapedNul(R"(\)"));
  EXPECT_FALSE(ContainsEscapedNul(R"({"a": "\"\u0030"})"));

  // What cJSON does with such a string, the reason for the check.
  Json j = MustParse(R"({"a": "x\u0000y"})");
  EXPECT_STREQ(cJSON_GetObjectItemCaseSensitive(j.get(), "a")->valuestring, "x");
}

TEST(Registry, OpenRefusesFilesWithANul) {
  TempDir dir;
  std::unique_ptr<Registry> r;
  std::string manifest = dir.File("m.json");
  WriteFile(manifest,
            "{\"functions\": {\n\"a\": {\"image\": \"i\",\n"
            "\"environment\": {\"TOKEN\": \"abc\\u0000def\"}}}}");
  Status st = Registry::Open(manifest, "", &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(manifest + ": line 3"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("NUL"), std::string::npos) << st.message();
  WriteFile(manifest, std::string(R"({"functions": {"a": {"image": "i", "command": ["sh", "x)") +
                          '\0' + R"(y"]}}})");
  st = Registry::Open(manifest, "", &r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("NUL"), std::string::npos) << st.message();

  std::string state = dir.File("state.json");
  WriteFile(state,
            R"({"version": 1, "functions": {"b": {"image": "i:latest", "mode": "exec",
                "command": ["sh", "-c", "echo hi\u0000; rm -rf /"], "last_modified_ms": 1}}})");
  st = Registry::Open("", state, &r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(state + ": line 2"), std::string::npos) << st.message();
  // An escaped backslash before "u0000" is just text and loads.
  WriteFile(state, R"({"version": 1, "functions": {"b": {"image": "i:latest",
                "environment": {"P": "C:\\u0000"}, "last_modified_ms": 1}}})");
  st = Registry::Open("", state, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(r->Find("b")->environment.at("P"), "C:\\u0000");
}

TEST(Registry, CreateRefusesNulInsideAnyString) {
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", "", &r).ok());
  const std::string nul("a\0b", 3);
  struct Case {
    const char* field;
    void (*set)(FunctionSpec*, const std::string&);
  };
  for (const Case& c : {
           Case{"environment",
                [](FunctionSpec*s, const std::string&v) { s->environment["K"] = v; }},
           Case{"command",
                [](FunctionSpec*s, const std::string&v) {
                  s->command = {"sh", v};
                }},
           Case{"args", [](FunctionSpec*s, const std::string&v) { s->args = {v}; }},
           Case{"working_dir",
                [](FunctionSpec*s, const std::string&v) { s->working_dir = "/" + v; }},
           Case{"image", [](FunctionSpec*s, const std::string&v) { s->image = v; }},
           Case{"description", [](FunctionSpec*s, const std::string&v) { s->description = v; }},
           Case{"security.user", [](FunctionSpec*s, const std::string&v) { s->security.user = v; }},
           Case{"forward", [](FunctionSpec*s, const std::string&v) { s->forward = {v}; }},
           Case{"store.prefixes",
                [](FunctionSpec*s, const std::string&v) { s->store.prefixes = {v}; }},
       }) {
    FunctionSpec s = MakeSpec("n");
    c.set(&s, nul);
    Status st = r->Create(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(std::string("field \"") + c.field + "\": contains a NUL"),
              std::string::npos)
        << st.message();
  }
  EXPECT_TRUE(r->List().empty());
}

TEST(Registry, UnknownFieldsAreRejectedSoTyposAreCaught) {
  ExpectFieldError(R"({"image": "i", "timout": 5})", "timout", "unknown field");
  ExpectFieldError(R"({"image": "i", "Image": "j"})", "Image", "unknown field");
  ExpectFieldError(R"({"image": "i", "timeout": 5, "timeout": 6})", "timeout", "twice");
}

TEST(Registry, SpecMustBeAnObjectWithAValidName) {
  Json arr = MustParse("[]");
  FunctionSpec s;
  Status st = ParseFunctionSpec("f", arr.get(), "m.json", &s);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("m.json: function \"f\""), std::string::npos) << st.message();
  Json obj = MustParse(R"({"image": "i"})");
  st = ParseFunctionSpec("bad name", obj.get(), "m.json", &s);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("m.json"), std::string::npos) << st.message();
}

TEST(Registry, SpecToJsonRoundTrips) {
  FunctionSpec s = MakeSpec("rt");
  s.mode = ShimMode::kHttp;
  s.timeout_s = 7;
  s.memory_mb = 512;
  s.environment = {{"A", "1"}, {"B", "two"}};
  s.args = {"--x"};
  s.working_dir = "/w";
  s.http_port = 81;
  s.http_path = "/p";
  s.network = "none";
  s.concurrency = 2;
  s.policy = Policy{PolicyKind::kWarm, 45, 0};
  s.queue_size = 0;
  s.queue_timeout_s = 30;
  s.security.read_only_root = false;
  s.security.drop_capabilities = false;
  s.security.cap_add = {"NET_BIND_SERVICE", "CAP_SYS_PTRACE"};
  s.security.no_new_privileges = false;
  s.security.pids_limit = 0;
  s.security.nofile = 4096;
  s.security.user = "1000:1000";
  s.forward = {"6379", "127.0.0.1:5432", "[::1]:53"};
  s.store.prefixes = {"order:*", "order-number"};
  s.description = "desc";
  s.role = "arn:aws:iam::1:role/r";
  s.last_modified_ms = 1234;
  Json j = SpecToJson(s);
  FunctionSpec back;
  Status st = ParseFunctionSpec("rt", j.get(), "x", &back);
  ASSERT_TRUE(st.ok()) << st.message() << "\n" << json::Print(j.get());
  back.from_manifest = s.from_manifest;
  EXPECT_EQ(back, s);
}

TEST(Registry, ParseFunctionSpecKeepsTheCallersProvenance) {
  Json obj = MustParse(R"({"image": "i", "timeout": 5})");
  FunctionSpec s;
  s.from_manifest = false;
  s.last_modified_ms = 77;
  ASSERT_TRUE(ParseFunctionSpec("f", obj.get(), "x", &s).ok());
  EXPECT_FALSE(s.from_manifest);
  EXPECT_EQ(s.last_modified_ms, 77);
  EXPECT_EQ(s.timeout_s, 5);
  obj = MustParse(R"({"image": "i", "last_modified_ms": 9})");
  ASSERT_TRUE(ParseFunctionSpec("f", obj.get(), "x", &s).ok());
  EXPECT_EQ(s.last_modified_ms, 9);
  EXPECT_EQ(s.timeout_s, 3);  // everything else comes from the object alone
  obj = MustParse(R"({"image": "i", "timeout": 0})");
  ASSERT_FALSE(ParseFunctionSpec("f", obj.get(), "x", &s).ok());
  EXPECT_EQ(s.last_modified_ms, 9);  // untouched on failure
}

TEST(Registry, SpecToJsonRoundTripsEachPolicyAndSecurityAlone) {
  std::vector<FunctionSpec> specs;
  auto add = [&](auto change) {
    FunctionSpec s = MakeSpec("one");
    s.last_modified_ms = 99;
    change(&s);
    specs.push_back(s);
  };
  add([](FunctionSpec*) {});
  add([](FunctionSpec* s) { s->policy = Policy{PolicyKind::kWarm, 60, 0}; });
  add([](FunctionSpec* s) { s->policy = Policy{PolicyKind::kWarm, 3600, 0}; });
  add([](FunctionSpec* s) { s->policy = Policy{PolicyKind::kPool, 60, 2}; });
  add([](FunctionSpec* s) {
    s->policy = Policy{PolicyKind::kPool, 60, 4};
    s->concurrency = 4;
  });
  add([](FunctionSpec* s) { s->security.read_only_root = false; });
  add([](FunctionSpec* s) { s->security.tmp_size_mb = 64; });
  add([](FunctionSpec* s) { s->security.drop_capabilities = false; });
  add([](FunctionSpec* s) { s->security.cap_add = {"CHOWN"}; });
  add([](FunctionSpec* s) { s->security.no_new_privileges = false; });
  add([](FunctionSpec* s) { s->security.pids_limit = 8; });
  add([](FunctionSpec* s) { s->security.nofile = 1048576; });
  add([](FunctionSpec* s) { s->security.user = "root"; });
  add([](FunctionSpec* s) { s->network = "isolated"; });
  add([](FunctionSpec* s) { s->mode = ShimMode::kPassthrough; });
  add([](FunctionSpec* s) { s->queue_size = 10000; });
  add([](FunctionSpec* s) { s->queue_timeout_s = 1; });
  add([](FunctionSpec* s) { s->forward = {"80"}; });
  add([](FunctionSpec* s) { s->store.prefixes = {"kv:*"}; });
  for (const FunctionSpec& s : specs) {
    Json j = SpecToJson(s);
    FunctionSpec back;
    Status st = ParseFunctionSpec("one", j.get(), "x", &back);
    ASSERT_TRUE(st.ok()) << st.message() << "\n" << json::Print(j.get());
    back.from_manifest = s.from_manifest;
    EXPECT_EQ(back, s) << json::Print(j.get());
  }
}

TEST(Registry, SpecToJsonWritesOnlyNonDefaults) {
  FunctionSpec s = MakeSpec("d");
  s.last_modified_ms = 5;
  EXPECT_EQ(json::Print(SpecToJson(s).get()),
            R"({"image":"ephemera/echo:latest","mode":"auto","timeout":3,"memory":128,)"
            R"("network":"isolated","last_modified_ms":5})");
  s.policy = Policy{PolicyKind::kWarm, 60, 0};
  s.security.pids_limit = 512;
  s.security.user = "app";
  s.queue_timeout_s = 20;
  Json j = SpecToJson(s);
  const cJSON* o = j.get();
  EXPECT_EQ(json::GetString(o, "policy"), "warm");  // the short form when it says everything
  EXPECT_EQ(json::Print(cJSON_GetObjectItemCaseSensitive(o, "security")),
            R"({"pids_limit":512,"user":"app"})");
  EXPECT_EQ(json::GetNumber(o, "queue_timeout"), 20);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(o, "queue_size"), nullptr);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(o, "forward"), nullptr);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(o, "store"), nullptr);
  // The network is always written: its default changed once (see the state versions).
  EXPECT_EQ(json::GetString(o, "network"), "isolated");
  s.policy = Policy{PolicyKind::kPool, 60, 3};
  EXPECT_EQ(json::Print(cJSON_GetObjectItemCaseSensitive(SpecToJson(s).get(), "policy")),
            R"({"type":"pool","size":3})");
  s.policy = Policy{PolicyKind::kWarm, 30, 0};
  EXPECT_EQ(json::Print(cJSON_GetObjectItemCaseSensitive(SpecToJson(s).get(), "policy")),
            R"({"type":"warm","idle_ttl":30})");
}

// ---- Invoke's FunctionName ----

TEST(Registry, FunctionRefAcceptsNamesArnsAndQualifiers) {
  struct Case {
    const char* ref;
    const char* name;
    const char* qualifier;
  };
  for (const Case& c : {
           Case{"echo", "echo", ""},
           Case{"echo:$LATEST", "echo", "$LATEST"},
           Case{"echo:prod", "echo", "prod"},
           Case{"echo:1", "echo", "1"},
           Case{"arn:aws:lambda:us-east-1:123456789012:function:echo", "echo", ""},
           Case{"arn:aws:lambda:eu-west-2:123456789012:function:echo:live", "echo", "live"},
           Case{"arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", "f", ""},
           Case{"123456789012:function:echo", "echo", ""},
           Case{"123456789012:function:echo:$LATEST", "echo", "$LATEST"},
           Case{"arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aecho", "echo", ""},
           Case{"echo:%24LATEST", "echo", "$LATEST"},
       }) {
    std::string name, qualifier;
    Status st = ParseFunctionRef(c.ref, &name, &qualifier);
    ASSERT_TRUE(st.ok()) << c.ref << ": " << st.message();
    EXPECT_EQ(name, c.name) << c.ref;
    EXPECT_EQ(qualifier, c.qualifier) << c.ref;
  }
}

TEST(Registry, FunctionRefRejectsWhatThePatternRejects) {
  for (const char* bad : {"", "a b", "echo:", "echo:a:b", "arn:aws:s3:::bucket", "a/b",
                          "arn:aws:lambda:us-east-1:12345:function:x", "echo:$NOPE", "%zz"}) {
    std::string name, qualifier;
    Status st = ParseFunctionRef(bad, &name, &qualifier);
    EXPECT_FALSE(st.ok()) << "accepted: " << bad;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
  }
  std::string name, qualifier;
  EXPECT_TRUE(ParseFunctionRef(std::string(64, 'n'), &name, &qualifier).ok());
  Status st = ParseFunctionRef(std::string(65, 'n'), &name, &qualifier);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("64"), std::string::npos) << st.message();
  EXPECT_FALSE(ParseFunctionRef(std::string(171, 'n'), &name, &qualifier).ok());
}

// ---- CreateFunction ----

constexpr char kCreate[] = R"({"FunctionName": "made", "Role": "arn:aws:iam::1:role/x",
  "PackageType": "Image", "Code": {"ImageUri": "ephemera/rev"},
  "ImageConfig": {"EntryPoint": ["/rev"], "Command": ["--stdio"], "WorkingDirectory": "/w"},
  "Timeout": 30, "MemorySize": 256, "Description": "reverses",
  "Environment": {"Variables": {"LEVEL": "3", "EPHEMERA_MODE": "exec",
                                "EPHEMERA_NETWORK": "bridge", "EPHEMERA_CONCURRENCY": "2"}},
  "Publish": false, "Tags": {"k": "v"}, "Architectures": ["x86_64"]})";

Status Create(std::string_view body, FunctionSpec* out = nullptr) {
  Json j = MustParse(body);
  FunctionSpec s;
  Status st = SpecFromCreateFunction(j.get(), &s);
  if (out != nullptr) *out = s;
  return st;
}

void ExpectCreateError(std::string_view body, std::string_view want) {
  Status st = Create(body);
  ASSERT_FALSE(st.ok()) << body;
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
}

TEST(Registry, CreateFunctionMapsOntoASpec) {
  FunctionSpec s;
  Status st = Create(kCreate, &s);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(s.name, "made");
  EXPECT_EQ(s.image, "ephemera/rev:latest");
  EXPECT_EQ(s.role, "arn:aws:iam::1:role/x");
  EXPECT_EQ(s.command, (std::vector<std::string>{"/rev", "--stdio"}));
  EXPECT_TRUE(s.args.empty());
  EXPECT_EQ(s.working_dir, "/w");
  EXPECT_EQ(s.timeout_s, 30);
  EXPECT_EQ(s.memory_mb, 256);
  EXPECT_EQ(s.description, "reverses");
  EXPECT_EQ(s.environment, (std::map<std::string, std::string>{{"LEVEL", "3"}}));
  EXPECT_EQ(s.mode, ShimMode::kExec);
  EXPECT_EQ(s.network, "bridge");
  EXPECT_EQ(s.concurrency, 2);
  EXPECT_FALSE(s.from_manifest);
}

TEST(Registry, CreateFunctionMinimalAndExtensions) {
  FunctionSpec s;
  ASSERT_TRUE(Create(R"({"FunctionName": "m", "Code": {"ImageUri": "x:1"}})", &s).ok());
  EXPECT_EQ(s.image, "x:1");  // PackageType inferred from ImageUri
  EXPECT_EQ(s.role, kDefaultRole);
  EXPECT_EQ(s.mode, ShimMode::kAuto);
  ASSERT_TRUE(Create(R"({"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:m",
      "PackageType": "Image", "Code": {"ImageUri": "x"}, "EphemeraMode": "http",
      "Environment": {"Variables": {"EPHEMERA_HTTP_PORT": "3000", "EPHEMERA_HTTP_PATH": "/e"}},
      "ImageConfig": {"Command": ["serve"]}})",
                     &s)
                  .ok());
  EXPECT_EQ(s.name, "m");
  EXPECT_EQ(s.mode, ShimMode::kHttp);
  EXPECT_EQ(s.http_port, 3000);
  EXPECT_EQ(s.http_path, "/e");
  EXPECT_TRUE(s.command.empty());
  EXPECT_EQ(s.args, (std::vector<std::string>{"serve"}));
}

TEST(Registry, CreateFunctionErrorsNameTheField) {
  ExpectCreateError("[]", "JSON object");
  ExpectCreateError(R"({"Code": {"ImageUri": "x"}})", "FunctionName is required");
  ExpectCreateError(R"({"FunctionName": 3, "Code": {"ImageUri": "x"}})", "FunctionName");
  ExpectCreateError(R"({"FunctionName": "a.b", "Code": {"ImageUri": "x"}})", "FunctionName");
  ExpectCreateError(R"({"FunctionName": "a:prod", "Code": {"ImageUri": "x"}})", "qualifier");
  ExpectCreateError(R"({"FunctionName": "a", "PackageType": "Image", "Code": {}})",
                    "Code.ImageUri is required for PackageType Image");
  ExpectCreateError(R"({"FunctionName": "a", "PackageType": "Image"})",
                    "Code.ImageUri is required for PackageType Image");
  ExpectCreateError(R"({"FunctionName": "a", "PackageType": "Zip", "Code": {"ZipFile": "UEs="}})",
                    "PackageType Zip is not supported: ephemera runs container images");
  ExpectCreateError(R"({"FunctionName": "a", "Runtime": "python3.12", "Handler": "h",
                        "Code": {"ZipFile": "UEs="}})",
                    "PackageType Zip is not supported");
  ExpectCreateError(R"({"FunctionName": "a", "PackageType": "Tar", "Code": {"ImageUri": "x"}})",
                    "PackageType");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": 1}})", "Code.ImageUri");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"}, "Timeout": 0})",
                    "Timeout must be an integer 1..900 (got 0)");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"}, "MemorySize": 64})",
                    "MemorySize must be an integer 128..10240");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"AWS_REGION": "x"}}})",
                    "Environment.Variables: key \"AWS_REGION\" is reserved");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"A": 1}}})",
                    "Environment.Variables.A must be a string");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"EPHEMERA_MOOD": "x"}}})",
                    "EPHEMERA_MOOD is not an ephemera setting");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"EPHEMERA_MODE": "lambda"}}})",
                    "EPHEMERA_MODE");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"EPHEMERA_POLICY": "hot"}}})",
                    "Environment.Variables.EPHEMERA_POLICY must be \"cold\", \"warm\" or \"pool\"");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"EPHEMERA_HTTP_PORT": "80x"}}})",
                    "EPHEMERA_HTTP_PORT must be an integer");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "Environment": {"Variables": {"EPHEMERA_HTTP_PORT": "81"}}})",
                    "only used with EPHEMERA_MODE http");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"}, "EphemeraMode": "http",
                        "Environment": {"Variables": {"EPHEMERA_MODE": "exec"}}})",
                    "contradicts");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "ImageConfig": {"EntryPoint": "sh"}})",
                    "ImageConfig.EntryPoint");
  ExpectCreateError(R"({"FunctionName": "a", "Code": {"ImageUri": "x"},
                        "ImageConfig": {"WorkingDirectory": "rel"}})",
                    "ImageConfig.WorkingDirectory must be an absolute path");
}

// A CreateFunction body for image "x" with these Environment.Variables (a JSON object body).
std::string WithVars(std::string_view vars) {
  return R"({"FunctionName": "a", "Code": {"ImageUri": "x"}, "Environment": {"Variables": )" +
         std::string(vars) + "}}";
}

TEST(Registry, CreateFunctionReadsPolicyQueueAndSecuritySettings) {
  FunctionSpec s;
  Status st = Create(WithVars(R"({"EPHEMERA_POLICY": "warm", "EPHEMERA_IDLE_TTL": "30",
      "EPHEMERA_QUEUE_SIZE": "0", "EPHEMERA_QUEUE_TIMEOUT": "60", "EPHEMERA_NETWORK": "isolated",
      "EPHEMERA_READ_ONLY_ROOT": "false", "EPHEMERA_USER": "1000:1000",
      "EPHEMERA_PIDS_LIMIT": "0", "EPHEMERA_FORWARD": "6379,127.0.0.1:5432",
      "EPHEMERA_DROP_CAPABILITIES": "false", "EPHEMERA_CAP_ADD": "NET_ADMIN,CHOWN",
      "EPHEMERA_NO_NEW_PRIVILEGES": "false", "EPHEMERA_NOFILE": "4096", "KEEP": "me"})"),
                     &s);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(s.policy, (Policy{PolicyKind::kWarm, 30, 0}));
  EXPECT_EQ(s.queue_size, 0);
  EXPECT_EQ(s.queue_timeout_s, 60);
  EXPECT_EQ(s.network, "isolated");
  EXPECT_FALSE(s.security.read_only_root);
  EXPECT_EQ(s.security.user, "1000:1000");
  EXPECT_EQ(s.security.pids_limit, 0);
  EXPECT_EQ(s.forward, (std::vector<std::string>{"6379", "127.0.0.1:5432"}));
  EXPECT_FALSE(s.security.drop_capabilities);
  EXPECT_EQ(s.security.cap_add, (std::vector<std::string>{"NET_ADMIN", "CHOWN"}));
  EXPECT_FALSE(s.security.no_new_privileges);
  EXPECT_EQ(s.security.nofile, 4096);
  EXPECT_EQ(s.environment, (std::map<std::string, std::string>{{"KEEP", "me"}}));

  ASSERT_TRUE(Create(WithVars(R"({"EPHEMERA_POLICY": "pool", "EPHEMERA_POOL_SIZE": "3",
      "EPHEMERA_CONCURRENCY": "3", "EPHEMERA_TMP_SIZE_MB": "64"})"),
                     &s)
                  .ok());
  EXPECT_EQ(s.policy, (Policy{PolicyKind::kPool, 60, 3}));
  EXPECT_EQ(s.concurrency, 3);
  EXPECT_EQ(s.security.tmp_size_mb, 64);
  EXPECT_TRUE(s.security.read_only_root);
  ASSERT_TRUE(Create(WithVars(R"({"EPHEMERA_POLICY": "warm", "EPHEMERA_FORWARD": ""})"), &s).ok());
  EXPECT_EQ(s.policy, (Policy{PolicyKind::kWarm, 60, 0}));
  EXPECT_TRUE(s.forward.empty());
  ASSERT_TRUE(Create(WithVars(R"({"EPHEMERA_MODE": "auto"})"), &s).ok());
  EXPECT_EQ(s.mode, ShimMode::kAuto);
}

TEST(Registry, CreateFunctionSettingErrorsNameTheVariable) {
  struct Case {
    const char* vars;
    const char* want;
  };
  for (
      const Case& c : {
          Case{R"({"EPHEMERA_POLICY": "pool"})",
               "Environment.Variables.EPHEMERA_POLICY pool needs "
               "Environment.Variables.EPHEMERA_POOL_SIZE"},
          Case{R"({"EPHEMERA_POOL_SIZE": "2"})",
               "Environment.Variables.EPHEMERA_POOL_SIZE is only used with "
               "Environment.Variables.EPHEMERA_POLICY pool"},
          Case{R"({"EPHEMERA_POLICY": "warm", "EPHEMERA_POOL_SIZE": "2"})",
               "EPHEMERA_POOL_SIZE is only used with"},
          Case{R"({"EPHEMERA_IDLE_TTL": "30"})",
               "Environment.Variables.EPHEMERA_IDLE_TTL is only used with "
               "Environment.Variables.EPHEMERA_POLICY warm"},
          Case{
              R"({"EPHEMERA_POLICY": "pool", "EPHEMERA_POOL_SIZE": "2", "EPHEMERA_IDLE_TTL": "5"})",
              "EPHEMERA_IDLE_TTL is only used with"},
          Case{
              R"({"EPHEMERA_POLICY": "pool", "EPHEMERA_POOL_SIZE": "8", "EPHEMERA_CONCURRENCY": "5"})",
              "Environment.Variables.EPHEMERA_POOL_SIZE 8 is above the function's concurrency "
              "limit (Environment.Variables.EPHEMERA_CONCURRENCY 5)"},
          Case{R"({"EPHEMERA_POLICY": "pool", "EPHEMERA_POOL_SIZE": "0"})",
               "Environment.Variables.EPHEMERA_POOL_SIZE must be an integer 1..100 (got \"0\")"},
          Case{R"({"EPHEMERA_POLICY": "warm", "EPHEMERA_IDLE_TTL": "3601"})",
               "Environment.Variables.EPHEMERA_IDLE_TTL must be an integer 1..3600"},
          Case{R"({"EPHEMERA_POLICY": "warm", "EPHEMERA_IDLE_TTL": " 30"})",
               "EPHEMERA_IDLE_TTL must be an integer"},
          Case{R"({"EPHEMERA_POLICY": "Warm"})", "Environment.Variables.EPHEMERA_POLICY must be"},
          Case{R"({"EPHEMERA_QUEUE_SIZE": "10001"})",
               "Environment.Variables.EPHEMERA_QUEUE_SIZE must be an integer 0..10000"},
          Case{R"({"EPHEMERA_QUEUE_TIMEOUT": "0"})",
               "Environment.Variables.EPHEMERA_QUEUE_TIMEOUT must be an integer 1..900"},
          Case{R"({"EPHEMERA_QUEUE_TIMEOUT": "+5"})", "EPHEMERA_QUEUE_TIMEOUT must be an integer"},
          Case{R"({"EPHEMERA_NETWORK": "overlay"})",
               "Environment.Variables.EPHEMERA_NETWORK must be \"isolated\", \"host\", "
               "\"bridge\" or \"none\""},
          Case{R"({"EPHEMERA_READ_ONLY_ROOT": "no"})",
               "Environment.Variables.EPHEMERA_READ_ONLY_ROOT must be \"true\" or \"false\""},
          Case{R"({"EPHEMERA_READ_ONLY_ROOT": "False"})", "EPHEMERA_READ_ONLY_ROOT must be"},
          Case{R"({"EPHEMERA_READ_ONLY_ROOT": "false", "EPHEMERA_TMP_SIZE_MB": "64"})",
               "Environment.Variables.EPHEMERA_TMP_SIZE_MB is only used with "
               "Environment.Variables.EPHEMERA_READ_ONLY_ROOT true"},
          Case{R"({"EPHEMERA_TMP_SIZE_MB": "0"})",
               "EPHEMERA_TMP_SIZE_MB must be an integer 1..10240"},
          Case{R"({"EPHEMERA_USER": "a b"})",
               "Environment.Variables.EPHEMERA_USER must be \"root\""},
          Case{R"({"EPHEMERA_PIDS_LIMIT": "4"})",
               "Environment.Variables.EPHEMERA_PIDS_LIMIT must be 0 (unlimited) or an integer "
               "8..65536"},
          Case{R"({"EPHEMERA_PIDS_LIMIT": "65537"})", "EPHEMERA_PIDS_LIMIT must be an integer"},
          Case{R"({"EPHEMERA_NOFILE": "10"})", "EPHEMERA_NOFILE must be an integer 64..1048576"},
          Case{R"({"EPHEMERA_FORWARD": "6379,,5432"})",
               "Environment.Variables.EPHEMERA_FORWARD has an empty item"},
          Case{R"({"EPHEMERA_FORWARD": "6379, 5432"})", "Environment.Variables.EPHEMERA_FORWARD: "},
          Case{R"({"EPHEMERA_FORWARD": "redis"})",
               "Environment.Variables.EPHEMERA_FORWARD: entry \"redis\""},
          Case{R"({"EPHEMERA_FORWARD": "6379,127.0.0.1:6379"})", "again"},
          Case{R"({"EPHEMERA_CAP_ADD": "ALL"})",
               "Environment.Variables.EPHEMERA_CAP_ADD: \"ALL\" is refused"},
          Case{R"({"EPHEMERA_CAP_ADD": "NET_ADMIN,"})", "EPHEMERA_CAP_ADD has an empty item"},
          Case{R"({"EPHEMERA_DROP_CAPABILITIES": "1"})", "EPHEMERA_DROP_CAPABILITIES must be"},
          Case{R"({"EPHEMERA_NO_NEW_PRIVILEGES": ""})", "EPHEMERA_NO_NEW_PRIVILEGES must be"},
          Case{R"({"EPHEMERA_SECURITY": "off"})", "EPHEMERA_SECURITY is not an ephemera setting"},
          Case{R"({"EPHEMERA_MODE": "http", "EPHEMERA_HTTP_PATH": "/x HTTP/1.0\r\n"})",
               "Environment.Variables.EPHEMERA_HTTP_PATH must not contain spaces"},
      }) {
    ExpectCreateError(WithVars(c.vars), c.want);
  }
}

TEST(Registry, CreateFunctionRefusesBadImageUris) {
  for (const char* bad : {"$(id)", "Ephemera/Echo", "a:b:c", "x:", "x y", "x@sha256:1"}) {
    Status st = Create(std::string(R"({"FunctionName": "a", "Code": {"ImageUri": )") +
                       json::Quote(bad) + "}}");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("Code.ImageUri is not a valid image reference"), std::string::npos)
        << st.message();
  }
  FunctionSpec s;
  ASSERT_TRUE(
      Create(R"({"FunctionName": "a", "Code": {"ImageUri": "localhost:5000/x/y:1.0"}})", &s).ok());
  EXPECT_EQ(s.image, "localhost:5000/x/y:1.0");
}

TEST(Registry, CreateFunctionEnvironmentIsLimitedTo4KB) {
  std::string fits = R"({"A": ")" + std::string(4095, 'v') + R"(", "EPHEMERA_MODE": "exec"})";
  FunctionSpec s;
  Status st = Create(WithVars(fits), &s);
  ASSERT_TRUE(st.ok()) << st.message();  // EPHEMERA_* settings do not count
  EXPECT_EQ(s.environment.at("A").size(), 4095u);
  ExpectCreateError(WithVars(R"({"A": ")" + std::string(4096, 'v') + "\"}"),
                    "Environment.Variables: the variables take 4097 bytes");
}

// ---- FunctionConfiguration ----

TEST(Registry, FunctionConfigurationHasTheLambdaShape) {
  FunctionSpec s;
  ASSERT_TRUE(Create(kCreate, &s).ok());
  s.last_modified_ms = 1795412401123;  // 2026-11-23T05:40:01.123Z
  Json c = FunctionConfiguration(s);
  const cJSON* o = c.get();
  EXPECT_EQ(json::GetString(o, "FunctionName"), "made");
  EXPECT_EQ(json::GetString(o, "FunctionArn"),
            "arn:aws:lambda:us-east-1:000000000000:function:made");
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(o, "Runtime"), nullptr);
  EXPECT_EQ(json::GetString(o, "Role"), "arn:aws:iam::1:role/x");
  EXPECT_EQ(json::GetNumber(o, "Timeout"), 30);
  EXPECT_EQ(json::GetNumber(o, "MemorySize"), 256);
  EXPECT_EQ(json::GetString(o, "LastModified"), "2026-11-23T05:40:01.123+0000");
  EXPECT_EQ(json::GetNumber(o, "CodeSize"), 0);
  EXPECT_EQ(json::GetString(o, "Version"), "$LATEST");
  EXPECT_EQ(json::GetString(o, "PackageType"), "Image");
  EXPECT_EQ(json::GetString(o, "State"), "Active");
  EXPECT_EQ(json::GetString(o, "LastUpdateStatus"), "Successful");
  EXPECT_EQ(json::GetString(o, "Description"), "reverses");
  EXPECT_EQ(json::GetStringArray(o, "Architectures"), (std::vector<std::string>{"x86_64"}));
  const cJSON* vars = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(o, "Environment"), "Variables");
  EXPECT_EQ(json::GetString(vars, "LEVEL"), "3");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_MODE"), "exec");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_NETWORK"), "bridge");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_CONCURRENCY"), "2");
  const cJSON* ic = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(o, "ImageConfigResponse"), "ImageConfig");
  EXPECT_EQ(json::GetStringArray(ic, "EntryPoint"), (std::vector<std::string>{"/rev", "--stdio"}));
  EXPECT_EQ(json::GetString(ic, "WorkingDirectory"), "/w");

  Json g = GetFunctionResult(s);
  EXPECT_NE(cJSON_GetObjectItemCaseSensitive(g.get(), "Configuration"), nullptr);
  const cJSON* code = cJSON_GetObjectItemCaseSensitive(g.get(), "Code");
  EXPECT_EQ(json::GetString(code, "RepositoryType"), "ECR");
  EXPECT_EQ(json::GetString(code, "ImageUri"), "ephemera/rev:latest");
}

TEST(Registry, ConfigurationRoundTripsThroughCreateFunction) {
  // What GetFunction shows can be sent back to CreateFunction and means the same function.
  FunctionSpec s;
  ASSERT_TRUE(Create(kCreate, &s).ok());
  Json c = FunctionConfiguration(s);
  Json req = json::NewObject();
  cJSON_AddStringToObject(req.get(), "FunctionName", "made");
  cJSON_AddStringToObject(req.get(), "Role", s.role.c_str());
  cJSON* code = cJSON_AddObjectToObject(req.get(), "Code");
  cJSON_AddStringToObject(code, "ImageUri", s.image.c_str());
  for (const char* k : {"Timeout", "MemorySize", "Description", "Environment"}) {
    cJSON_AddItemToObject(req.get(), k,
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c.get(), k), 1));
  }
  cJSON_AddItemToObject(
      req.get(), "ImageConfig",
      cJSON_Duplicate(
          cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(c.get(), "ImageConfigResponse"), "ImageConfig"),
          1));
  FunctionSpec back;
  Status st = SpecFromCreateFunction(req.get(), &back);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(back, s);
}

TEST(Registry, FunctionConfigurationShowsNonDefaultSettings) {
  FunctionSpec s = MakeSpec("shown");
  Json c = FunctionConfiguration(s);
  const cJSON* vars = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(c.get(), "Environment"), "Variables");
  EXPECT_EQ(json::Print(vars), R"({"EPHEMERA_MODE":"auto"})");  // only the mode, always

  s.policy = Policy{PolicyKind::kPool, 60, 2};
  s.queue_size = 5;
  s.queue_timeout_s = 3;
  s.network = "host";
  s.security.read_only_root = false;
  s.security.user = "app";
  s.security.pids_limit = 100;
  s.security.cap_add = {"NET_ADMIN", "CHOWN"};
  s.forward = {"6379", "db:5432"};
  c = FunctionConfiguration(s);
  vars = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c.get(), "Environment"),
                                          "Variables");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_POLICY"), "pool");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_POOL_SIZE"), "2");
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(vars, "EPHEMERA_IDLE_TTL"), nullptr);
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_QUEUE_SIZE"), "5");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_QUEUE_TIMEOUT"), "3");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_NETWORK"), "host");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_READ_ONLY_ROOT"), "false");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_USER"), "app");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_PIDS_LIMIT"), "100");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_CAP_ADD"), "NET_ADMIN,CHOWN");
  EXPECT_EQ(json::GetString(vars, "EPHEMERA_FORWARD"), "6379,db:5432");
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(vars, "EPHEMERA_NOFILE"), nullptr);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(vars, "EPHEMERA_TMP_SIZE_MB"), nullptr);
}

// Builds the CreateFunction request a client would send back from GetFunction's output.
Json RequestFromConfiguration(const FunctionSpec& s) {
  Json c = FunctionConfiguration(s);
  Json req = json::NewObject();
  cJSON_AddStringToObject(req.get(), "FunctionName", s.name.c_str());
  cJSON_AddStringToObject(req.get(), "Role", s.role.c_str());
  cJSON* code = cJSON_AddObjectToObject(req.get(), "Code");
  cJSON_AddStringToObject(code, "ImageUri", s.image.c_str());
  for (const char* k : {"Timeout", "MemorySize", "Description", "Environment"}) {
    cJSON_AddItemToObject(req.get(), k,
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c.get(), k), 1));
  }
  cJSON_AddItemToObject(
      req.get(), "ImageConfig",
      cJSON_Duplicate(
          cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(c.get(), "ImageConfigResponse"), "ImageConfig"),
          1));
  return req;
}

TEST(Registry, ConfigurationRoundTripsEveryFieldThroughCreateFunction) {
  std::vector<FunctionSpec> specs;
  FunctionSpec all = MakeSpec("all");
  all.from_manifest = false;
  all.mode = ShimMode::kHttp;
  all.http_port = 0;
  all.http_path = "/in";
  all.timeout_s = 60;
  all.memory_mb = 1024;
  all.environment = {{"A", "1"}, {"B", ""}};
  all.args = {"serve", "--fast"};
  all.working_dir = "/srv";
  all.network = "isolated";
  all.concurrency = 4;
  all.policy = Policy{PolicyKind::kPool, 60, 4};
  all.queue_size = 0;
  all.queue_timeout_s = 900;
  all.security.tmp_size_mb = 100;
  all.security.drop_capabilities = false;
  all.security.cap_add = {"NET_BIND_SERVICE"};
  all.security.no_new_privileges = false;
  all.security.pids_limit = 0;
  all.security.nofile = 64;
  all.security.user = "root";
  all.forward = {"6379", "127.0.0.1:5432"};
  all.store.prefixes = {"order:*", "stock:*"};
  all.description = "everything";
  all.role = "arn:aws:iam::1:role/r";
  specs.push_back(all);
  FunctionSpec warm = MakeSpec("warm");
  warm.from_manifest = false;
  warm.policy = Policy{PolicyKind::kWarm, 5, 0};
  warm.security.read_only_root = false;
  warm.command = {"/bin/app", "-v"};
  specs.push_back(warm);
  FunctionSpec plain_warm = MakeSpec("plain");
  plain_warm.from_manifest = false;
  plain_warm.policy = Policy{PolicyKind::kWarm, 60, 0};
  specs.push_back(plain_warm);
  for (const FunctionSpec& s : specs) {
    Json req = RequestFromConfiguration(s);
    FunctionSpec back;
    Status st = SpecFromCreateFunction(req.get(), &back);
    ASSERT_TRUE(st.ok()) << st.message() << "\n" << json::Print(req.get());
    EXPECT_EQ(back, s) << json::Print(req.get());
  }
}

TEST(Registry, LastModifiedFormat) {
  EXPECT_EQ(FormatLastModified(0), "1970-01-01T00:00:00.000+0000");
  EXPECT_EQ(FormatLastModified(1795412401005), "2026-11-23T05:40:01.005+0000");
}

// ---- the Registry: files and persistence ----

TEST(Registry, ShippedManifestLoads) {
  std::unique_ptr<Registry> r;
  Status st = Registry::Open(EPHEMERA_SOURCE_DIR "/registry/functions.json", "", &r);
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<std::string> names;
  for (const auto& spec : r->List()) names.push_back(spec->name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "batch", "batch-item", "crash", "echo", "echo-exec", "kv-roundtrip",
                       "kv-store", "lambda-cpp", "order-accept", "order-check", "order-generate",
                       "order-register", "rev", "shout", "sleeper", "webapp"}));
  // The order flow's functions use the store, each within its own keys.
  EXPECT_EQ(r->Find("order-check")->store.prefixes,
            (std::vector<std::string>{"order:*", "stock:*", "price:*"}));
  EXPECT_EQ(r->Find("order-register")->store.prefixes,
            (std::vector<std::string>{"order:*", "order-number"}));
  EXPECT_EQ(r->Find("batch")->args, std::vector<std::string>{"batch"});
  EXPECT_TRUE(r->Find("echo")->store.prefixes.empty());
  auto echo = r->Find("echo");
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->image, "ephemera/echo:latest");
  EXPECT_EQ(echo->mode, ShimMode::kNative);
  EXPECT_EQ(echo->timeout_s, 3);
  EXPECT_EQ(echo->memory_mb, 128);
  EXPECT_TRUE(echo->from_manifest);
  EXPECT_GT(echo->last_modified_ms, 0);
  EXPECT_EQ(r->Find("echo-exec")->command, (std::vector<std::string>{"/echo", "--stdio"}));
  EXPECT_EQ(r->Find("echo-exec")->mode, ShimMode::kExec);
  EXPECT_EQ(r->Find("shout")->image, "ephemera/shout:latest");
  EXPECT_EQ(r->Find("sleeper")->timeout_s, 1);
  EXPECT_EQ(r->Find("sleeper")->command, (std::vector<std::string>{"sh", "-c", "sleep 30; cat"}));
  EXPECT_EQ(r->Find("crash")->mode, ShimMode::kPassthrough);
  EXPECT_EQ(r->Find("crash")->image, "ephemera/busybox:latest");
  EXPECT_EQ(r->Find("webapp")->mode, ShimMode::kHttp);
  EXPECT_EQ(r->Find("webapp")->http_port, 0);  // a free port per environment
  EXPECT_EQ(r->Find("lambda-cpp")->mode, ShimMode::kPassthrough);
  EXPECT_EQ(r->Find("rev")->image, "ephemera/rev:latest");
  EXPECT_EQ(r->Find("nope"), nullptr);
}

// The JSON blocks of registry/README.md, in order.
std::vector<std::string> ReadmeJsonBlocks() {
  std::string text = ReadFile(EPHEMERA_SOURCE_DIR "/registry/README.md");
  std::vector<std::string> blocks;
  for (size_t at = text.find("```json\n"); at != std::string::npos;
       at = text.find("```json\n", at)) {
    at += 8;
    size_t end = text.find("```", at);
    blocks.push_back(text.substr(at, end - at));
    at = end;
  }
  return blocks;
}

TEST(Registry, ReadmeExamplesLoad) {
  std::vector<std::string> blocks = ReadmeJsonBlocks();
  ASSERT_EQ(blocks.size(), 2u);  // the manifest, the state file
  TempDir dir;
  WriteFile(dir.File("m.json"), blocks[0]);
  WriteFile(dir.File("state.json"), blocks[1]);
  std::unique_ptr<Registry> r;
  Status st = Registry::Open(dir.File("m.json"), dir.File("state.json"), &r);
  ASSERT_TRUE(st.ok()) << st.message();
  auto cache = r->Find("cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->policy, (Policy{PolicyKind::kPool, 60, 2}));
  EXPECT_EQ(cache->security.user, "1000:1000");
  auto made = r->Find("made");
  ASSERT_NE(made, nullptr);
  EXPECT_FALSE(made->security.read_only_root);
  EXPECT_EQ(r->Find("echo"), nullptr);  // removed
}

TEST(Registry, ManifestErrorsNameTheFile) {
  TempDir dir;
  std::unique_ptr<Registry> r;
  Status st = Registry::Open(dir.File("missing.json"), "", &r);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find(dir.File("missing.json")), std::string::npos) << st.message();

  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& c : {
           Case{"{\"functions\": {\n\"a\": {\"image\": \"i\",}}}", "line 2"},
           Case{"[]", "must be a JSON object"},
           Case{"{}", "missing \"functions\""},
           Case{R"({"functions": []})", "\"functions\" must be an object"},
           Case{R"({"funcs": {}})", "unknown top-level field \"funcs\""},
           Case{R"({"functions": {"a": {"image": "i"}, "a": {"image": "j"}}})", "defined twice"},
           Case{R"({"functions": {"a": {"image": "i", "timeout": "abc"}}})",
                "function \"a\": field \"timeout\": must be an integer 1..900 (got \"abc\")"},
           Case{R"({"functions": {"a b": {"image": "i"}}})", "only letters"},
       }) {
    WriteFile(dir.File("m.json"), c.text);
    st = Registry::Open(dir.File("m.json"), "", &r);
    ASSERT_FALSE(st.ok()) << c.text;
    EXPECT_NE(st.message().find(dir.File("m.json") + ":"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(c.want), std::string::npos) << st.message();
  }
}

TEST(Registry, CreatedFunctionsSurviveReopen) {
  TempDir dir;
  WriteFile(dir.File("m.json"), kSmallManifest);
  std::string state = dir.File("state/sub/functions.json");  // parents are created
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open(dir.File("m.json"), state, &r).ok());
  EXPECT_EQ(r->List().size(), 2u);

  FunctionSpec s;
  ASSERT_TRUE(Create(kCreate, &s).ok());
  Status st = r->Create(s);
  ASSERT_TRUE(st.ok()) << st.message();
  auto made = r->Find("made");
  ASSERT_NE(made, nullptr);
  EXPECT_FALSE(made->from_manifest);
  EXPECT_GT(made->last_modified_ms, 0);
  EXPECT_EQ(r->Create(s).code(), StatusCode::kConflict);
  EXPECT_EQ(r->Create(MakeSpec("alpha")).code(), StatusCode::kConflict);

  std::unique_ptr<Registry> again;
  st = Registry::Open(dir.File("m.json"), state, &again);
  ASSERT_TRUE(st.ok()) << st.message();
  auto reread = again->Find("made");
  ASSERT_NE(reread, nullptr);
  EXPECT_EQ(*reread, *made);
  std::vector<std::string> names;
  for (const auto& spec : again->List()) names.push_back(spec->name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "beta", "made"}));
}

TEST(Registry, RemoveWorksForCreatedAndManifestFunctions) {
  TempDir dir;
  WriteFile(dir.File("m.json"), kSmallManifest);
  std::string state = dir.File("state.json");
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open(dir.File("m.json"), state, &r).ok());
  ASSERT_TRUE(r->Create(MakeSpec("made")).ok());
  auto held = r->Find("made");  // an in-flight invocation keeps its spec
  ASSERT_TRUE(r->Remove("made").ok());
  EXPECT_EQ(r->Find("made"), nullptr);
  EXPECT_EQ(held->name, "made");
  EXPECT_EQ(r->Remove("made").code(), StatusCode::kNotFound);

  // A manifest function is hidden by a tombstone that survives a restart...
  ASSERT_TRUE(r->Remove("alpha").ok());
  EXPECT_EQ(r->Find("alpha"), nullptr);
  ASSERT_TRUE(Registry::Open(dir.File("m.json"), state, &r).ok());
  EXPECT_EQ(r->Find("alpha"), nullptr);
  EXPECT_NE(r->Find("beta"), nullptr);
  // ...and the name can be created again through the API, then removed again for good.
  FunctionSpec alpha = MakeSpec("alpha");
  alpha.timeout_s = 9;
  ASSERT_TRUE(r->Create(alpha).ok());
  ASSERT_TRUE(Registry::Open(dir.File("m.json"), state, &r).ok());
  ASSERT_NE(r->Find("alpha"), nullptr);
  EXPECT_EQ(r->Find("alpha")->timeout_s, 9);
  EXPECT_FALSE(r->Find("alpha")->from_manifest);
  ASSERT_TRUE(r->Remove("alpha").ok());
  ASSERT_TRUE(Registry::Open(dir.File("m.json"), state, &r).ok());
  EXPECT_EQ(r->Find("alpha"), nullptr);
}

TEST(Registry, CreateValidatesLikeTheManifest) {
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", "", &r).ok());
  FunctionSpec bad = MakeSpec("bad");
  bad.timeout_s = 0;
  Status st = r->Create(bad);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("\"timeout\""), std::string::npos) << st.message();
  EXPECT_EQ(r->Create(MakeSpec("bad name")).code(), StatusCode::kInvalidArgument);
  FunctionSpec empty_image = MakeSpec("e");
  empty_image.image = "";
  st = r->Create(empty_image);
  EXPECT_NE(st.message().find("(got \"\")"), std::string::npos) << st.message();
  FunctionSpec untagged = MakeSpec("u");
  untagged.image = "ephemera/echo";
  ASSERT_TRUE(r->Create(untagged).ok());
  EXPECT_EQ(r->Find("u")->image, "ephemera/echo:latest");
  EXPECT_TRUE(r->List().size() == 1);
}

TEST(Registry, TruncatedStateFileIsAnErrorNamingTheFile) {
  TempDir dir;
  std::string state = dir.File("state.json");
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  ASSERT_TRUE(r->Create(MakeSpec("one")).ok());
  ASSERT_TRUE(r->Create(MakeSpec("two")).ok());
  std::string whole = ReadFile(state);
  ASSERT_GT(whole.size(), 20u);
  // Every proper prefix of a valid state file is rejected, never read as fewer functions.
  for (size_t cut : {size_t{0}, size_t{1}, whole.size() / 3, whole.size() / 2, whole.size() - 3}) {
    WriteFile(state, whole.substr(0, cut));
    Status st = Registry::Open("", state, &r);
    ASSERT_FALSE(st.ok()) << "accepted a state file cut at byte " << cut;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find(state), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  }
  WriteFile(state, R"({"version": 3, "functions": {}})");
  EXPECT_FALSE(Registry::Open("", state, &r).ok());
  WriteFile(state, R"({"version": 1, "functions": {}, "extra": 1})");
  EXPECT_FALSE(Registry::Open("", state, &r).ok());
  WriteFile(state, R"({"version": 1, "removed": "alpha"})");
  EXPECT_FALSE(Registry::Open("", state, &r).ok());
}

TEST(Registry, LeftoverTmpFileIsIgnored) {
  TempDir dir;
  std::string state = dir.File("state.json");
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  ASSERT_TRUE(r->Create(MakeSpec("kept")).ok());
  // A crash between writing the tmp file and renaming it leaves this behind.
  WriteFile(state + ".tmp", "{\"version\": 1, \"functions\": {\"half");
  Status st = Registry::Open("", state, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_NE(r->Find("kept"), nullptr);
  EXPECT_EQ(r->List().size(), 1u);
  // The next write replaces it and leaves no tmp file.
  ASSERT_TRUE(r->Create(MakeSpec("next")).ok());
  EXPECT_FALSE(std::filesystem::exists(state + ".tmp"));
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  EXPECT_EQ(r->List().size(), 2u);
}

TEST(Registry, FailedWriteChangesNothing) {
  // Root ignores directory permissions, so the state file's directory becomes a plain file
  // after Open: the write must fail, and the registry must stay as it was.
  TempDir dir;
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", dir.File("sub/state.json"), &r).ok());
  WriteFile(dir.File("sub"), "x");
  Status st = r->Create(MakeSpec("lost"));
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find(dir.File("sub")), std::string::npos) << st.message();
  EXPECT_EQ(r->Find("lost"), nullptr);
  EXPECT_TRUE(r->List().empty());
}

TEST(Registry, UnreadableStatePathIsAnError) {
  TempDir dir;
  WriteFile(dir.File("not-a-dir"), "x");
  std::unique_ptr<Registry> r;
  Status st = Registry::Open("", dir.File("not-a-dir/state.json"), &r);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(dir.File("not-a-dir/state.json")), std::string::npos) << st.message();
}

TEST(Registry, MissingStateFileIsAnEmptyState) {
  TempDir dir;
  std::unique_ptr<Registry> r;
  Status st = Registry::Open("", dir.File("none.json"), &r);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(r->List().empty());
  EXPECT_FALSE(std::filesystem::exists(dir.File("none.json")));  // opening writes nothing
}

// Version 1 was written while functions without a network shared the host's (and left the
// field out for them); version 2 writes the field always and the default is isolated.
TEST(Registry, StateVersionOneKeepsTheHostNetworkOfFunctionsThatNamedNone) {
  TempDir dir;
  std::string state = dir.File("state.json");
  WriteFile(state, R"({"version": 1, "functions": {)"
                   R"("old": {"image": "ephemera/echo:latest"},)"
                   R"("boxed": {"image": "ephemera/echo:latest", "network": "isolated"}}})");
  std::unique_ptr<Registry> r;
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  EXPECT_EQ(r->Find("old")->network, "host");
  EXPECT_EQ(r->Find("boxed")->network, "isolated");
  // Saved again (any change) as version 2, the choice is written out and survives.
  ASSERT_TRUE(r->Create(MakeSpec("new")).ok());
  std::string saved = ReadFile(state);
  EXPECT_NE(saved.find("\"version\":\t2"), std::string::npos) << saved;
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  EXPECT_EQ(r->Find("old")->network, "host");
  EXPECT_EQ(r->Find("new")->network, "isolated");

  WriteFile(state, R"({"version": 2, "functions": {"plain": {"image": "ephemera/echo:latest"}}})");
  ASSERT_TRUE(Registry::Open("", state, &r).ok());
  EXPECT_EQ(r->Find("plain")->network, "isolated");
}

}  // namespace
}  // namespace ephemera::registry
