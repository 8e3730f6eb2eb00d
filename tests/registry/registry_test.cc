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
  EXPECT_EQ(s.mode, ShimMode::kExec);
  EXPECT_EQ(s.policy, Policy::kCold);
  EXPECT_EQ(s.network, "host");
  EXPECT_EQ(s.http_port, 8080);
  EXPECT_EQ(s.http_path, "/");
  EXPECT_EQ(s.concurrency, 0);
  EXPECT_TRUE(s.command.empty());
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
  ASSERT_TRUE(ParseOne(R"({"image": "busybox@sha256:abcd"})", &s).ok());
  EXPECT_EQ(s.image, "busybox@sha256:abcd");
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
  for (auto [text, mode] : {std::pair{"exec", ShimMode::kExec},
                            {"http", ShimMode::kHttp},
                            {"native", ShimMode::kNative},
                            {"passthrough", ShimMode::kPassthrough}}) {
    ASSERT_TRUE(ParseOne(std::string(R"({"image": "i", "mode": ")") + text + "\"}", &s).ok());
    EXPECT_EQ(s.mode, mode);
    EXPECT_STREQ(ShimModeName(mode), text);
  }
  ExpectFieldError(R"({"image": "i", "mode": "lambda"})", "mode", "(got \"lambda\")");
  ExpectFieldError(R"({"image": "i", "mode": 1})", "mode");
  ExpectFieldError(R"({"image": "i", "policy": "warm"})", "policy", "not supported yet");
  ExpectFieldError(R"({"image": "i", "policy": "pool"})", "policy", "not supported yet");
  ExpectFieldError(R"({"image": "i", "policy": "hot"})", "policy");
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
  ExpectFieldError(R"({"image": "i", "http_port": 9000})", "http_port", "only used in mode");
  ExpectFieldError(R"({"image": "i", "network": "overlay"})", "network", "\"overlay\"");
  ExpectFieldError(R"({"image": "i", "concurrency": -1})", "concurrency");
  ExpectFieldError(R"({"image": "i", "description": 3})", "description");
  ExpectFieldError(R"({"image": "i", "description": ")" + std::string(257, 'd') + "\"}",
                   "description", "256");
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
  s.description = "desc";
  s.role = "arn:aws:iam::1:role/r";
  s.last_modified_ms = 1234;
  Json j = SpecToJson(s);
  FunctionSpec back;
  Status st = ParseFunctionSpec("rt", j.get(), "x", &back);
  ASSERT_TRUE(st.ok()) << st.message();
  back.from_manifest = s.from_manifest;
  EXPECT_EQ(back, s);
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
  EXPECT_EQ(s.mode, ShimMode::kExec);
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
                        "Environment": {"Variables": {"EPHEMERA_POLICY": "warm"}}})",
                    "not supported yet");
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
  EXPECT_EQ(names, (std::vector<std::string>{"crash", "echo", "echo-exec", "lambda-cpp", "rev",
                                             "shout", "sleeper", "webapp"}));
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
  WriteFile(state, R"({"version": 2, "functions": {}})");
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

}  // namespace
}  // namespace ephemera::registry
