// registry/registry.cc: specs, validation, the manifest and state files, and the Lambda
// control-plane mapping. See registry.h for the contract and README.md for the file shapes.
#include "registry/registry.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <regex>
#include <set>

namespace ephemera::registry {
namespace {

constexpr int kTimeoutMin = 1, kTimeoutMax = 900;
constexpr int kMemoryMin = 128, kMemoryMax = 10240;
constexpr int kConcurrencyMax = 10000;
constexpr size_t kNameMax = 64;
constexpr size_t kRefMax = 170;
constexpr size_t kDescriptionMax = 256;
constexpr char kEphemeraPrefix[] = "EPHEMERA_";

// ---- small text helpers ----

std::string Quoted(std::string_view s) {
  return json::Quote(s);
}

// The value as the user wrote it, for "(got ...)" in messages; long values are cut.
std::string Shown(const cJSON* item) {
  std::string text = item == nullptr ? "nothing" : json::Print(item);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `source: function "name": field "f": problem`, the one shape of every spec error.
Status FieldError(std::string_view source, std::string_view name, std::string_view field,
                  std::string_view problem) {
  std::string m;
  if (!source.empty()) m.append(source).append(": ");
  m.append("function ").append(Quoted(name)).append(": ");
  m.append("field ").append(Quoted(field)).append(": ").append(problem);
  return InvalidArgument(std::move(m));
}

// ---- typed readers of one JSON member; `problem` is filled when the type is wrong ----

bool ReadInt(const cJSON* item, int64_t lo, int64_t hi, int64_t* out, std::string* problem) {
  if (cJSON_IsNumber(item) && std::isfinite(item->valuedouble) &&
      item->valuedouble == std::floor(item->valuedouble) && item->valuedouble >= lo &&
      item->valuedouble <= hi) {
    *out = static_cast<int64_t>(item->valuedouble);
    return true;
  }
  *problem = "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi) + " (got " +
             Shown(item) + ")";
  return false;
}

bool ReadString(const cJSON* item, std::string* out, std::string* problem) {
  if (cJSON_IsString(item) && item->valuestring != nullptr) {
    *out = item->valuestring;
    return true;
  }
  *problem = "must be a string (got " + Shown(item) + ")";
  return false;
}

bool ReadArgv(const cJSON* item, std::vector<std::string>* out, std::string* problem) {
  *problem = "must be a non-empty array of strings (got " + Shown(item) + ")";
  if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0) return false;
  std::vector<std::string> argv;
  const cJSON* el = nullptr;
  cJSON_ArrayForEach(el, item) {
    if (!cJSON_IsString(el) || el->valuestring == nullptr) return false;
    argv.emplace_back(el->valuestring);
  }
  *out = std::move(argv);
  return true;
}

// ---- field rules shared by the manifest, the state file and CreateFunction ----

// Empty when `key` is a usable environment name, else the problem in a phrase.
std::string EnvKeyProblem(std::string_view key) {
  bool ok = !key.empty() && std::isalpha(static_cast<unsigned char>(key[0]));
  for (char c : key) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok) return "key " + Quoted(key) + " must match [a-zA-Z][a-zA-Z0-9_]*";
  if (IsReservedEnvName(key)) {
    return "key " + Quoted(key) + " is reserved: the Lambda runtime environment sets it";
  }
  if (StartsWith(key, kEphemeraPrefix)) {
    return "key " + Quoted(key) + " is reserved for ephemera's own settings";
  }
  return {};
}

bool ValidImage(std::string_view image) {
  if (image.empty() || image.front() == ':' || image.front() == '/' || image.front() == '@') {
    return false;
  }
  for (char c : image) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// Adds ":latest" when the reference has neither a tag nor a digest. A ':' before the last
// '/' belongs to a registry host:port, not a tag.
std::string NormalizeImage(std::string_view image) {
  std::string out(image);
  if (out.find('@') != std::string::npos) return out;
  size_t slash = out.rfind('/');
  size_t colon = out.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    out += ":latest";
  }
  return out;
}

bool ValidNetwork(std::string_view n) {
  return n == "host" || n == "bridge" || n == "none";
}

// Range and cross-field checks on a complete spec, with manifest field names. Everything
// ParseFunctionSpec and SpecFromCreateFunction produce passes through here, and so does
// anything handed to Registry::Create directly.
Status ValidateSpec(const FunctionSpec& s, std::string_view source) {
  if (Status st = ValidateName(s.name); !st.ok()) {
    std::string m(source);
    if (!m.empty()) m += ": ";
    return InvalidArgument(m + "function " + Quoted(s.name) + ": " + st.message());
  }
  auto range = [&](const char* field, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return Status::Ok();
    return FieldError(source, s.name, field,
                      "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi) +
                          " (got " + std::to_string(v) + ")");
  };
  if (!ValidImage(s.image)) {
    return FieldError(source, s.name, "image",
                      "must be an image reference such as \"ephemera/echo:latest\" (got " +
                          Quoted(s.image) + ")");
  }
  if (Status st = range("timeout", s.timeout_s, kTimeoutMin, kTimeoutMax); !st.ok()) return st;
  if (Status st = range("memory", s.memory_mb, kMemoryMin, kMemoryMax); !st.ok()) return st;
  for (const auto& [key, value] : s.environment) {
    if (std::string p = EnvKeyProblem(key); !p.empty()) {
      return FieldError(source, s.name, "environment", p);
    }
  }
  if (!s.command.empty() && s.command[0].empty()) {
    return FieldError(source, s.name, "command", "the first element (the program) is empty");
  }
  if (!s.command.empty() && !s.args.empty()) {
    return FieldError(source, s.name, "args",
                      "cannot be combined with \"command\" (command is the whole argv)");
  }
  if (!s.working_dir.empty() && s.working_dir[0] != '/') {
    return FieldError(source, s.name, "working_dir",
                      "must be an absolute path (got " + Quoted(s.working_dir) + ")");
  }
  if (Status st = range("http_port", s.http_port, 0, 65535); !st.ok()) return st;
  if (s.http_path.empty() || s.http_path[0] != '/') {
    return FieldError(source, s.name, "http_path",
                      "must start with '/' (got " + Quoted(s.http_path) + ")");
  }
  if (s.mode != ShimMode::kHttp && (s.http_port != 8080 || s.http_path != "/")) {
    return FieldError(
        source, s.name, s.http_port != 8080 ? "http_port" : "http_path",
        std::string("is only used in mode \"http\" (mode is \"") + ShimModeName(s.mode) + "\")");
  }
  if (!ValidNetwork(s.network)) {
    return FieldError(source, s.name, "network",
                      "must be \"host\", \"bridge\" or \"none\" (got " + Quoted(s.network) + ")");
  }
  if (Status st = range("concurrency", s.concurrency, 0, kConcurrencyMax); !st.ok()) return st;
  if (s.description.size() > kDescriptionMax) {
    return FieldError(
        source, s.name, "description",
        "must be at most 256 characters (got " + std::to_string(s.description.size()) + ")");
  }
  if (s.last_modified_ms < 0) {
    return FieldError(source, s.name, "last_modified_ms", "must not be negative");
  }
  return Status::Ok();
}

// ---- files ----

Status ReadWholeFile(const std::string& path, std::string_view what, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound(std::string(what) + " " + path + " does not exist");
    return Internal("cannot open " + std::string(what) + " " + path + ": " + std::strerror(err));
  }
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Internal("cannot read " + std::string(what) + " " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  *out = std::move(text);
  return Status::Ok();
}

// 1-based line of byte `offset`, so a parse error points where an editor can go.
size_t LineOf(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

Status ParseJsonFile(const std::string& path, std::string_view text, std::string_view what,
                     json::Json* out) {
  size_t at = 0;
  json::Json root = json::Parse(text, &at);
  if (!root) {
    std::string m = path + ": " + std::string(what) + " is not valid JSON (error at line " +
                    std::to_string(LineOf(text, at)) + ", byte " + std::to_string(at) + " of " +
                    std::to_string(text.size()) + ")";
    // cJSON stops at (or one before) the end when the text just stops, as a write cut
    // short by a crash would.
    bool at_end = true;
    for (size_t i = at + 1; i < text.size(); ++i) {
      if (!std::isspace(static_cast<unsigned char>(text[i]))) at_end = false;
    }
    if (at_end) m += "; the file ends too early, it looks truncated";
    return InvalidArgument(std::move(m));
  }
  if (!cJSON_IsObject(root.get())) {
    return InvalidArgument(path + ": " + std::string(what) + " must be a JSON object");
  }
  *out = std::move(root);
  return Status::Ok();
}

// Creates `dir` and its parents (mkdir -p).
Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Internal(dir + " exists and is not a directory");
  }
  size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (Status s = MakeDirs(dir.substr(0, slash)); !s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Internal("cannot create directory " + dir + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `text` to `path` so that a reader sees either the old file or the whole new one:
// write "<path>.tmp" in the same directory, fsync it, rename it over `path`, fsync the
// directory so the rename itself survives a crash.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string dir = DirOf(path);
  if (Status s = MakeDirs(dir); !s.ok()) return s;
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Internal("cannot write " + tmp + ": " + std::strerror(errno));
  auto fail = [&](const char* step) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Internal(std::string("cannot ") + step + " " + tmp + ": " + std::strerror(err));
  };
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Internal("cannot close " + tmp + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Internal("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: the data is already in place
    ::close(dfd);
  }
  return Status::Ok();
}

int64_t MtimeMs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

// Parses {"functions": {name: spec, ...}} members of `root` into `out`, rejecting duplicates.
Status ParseFunctionMap(const cJSON* functions, const std::string& source,
                        std::map<std::string, std::shared_ptr<const FunctionSpec>>* out) {
  if (!cJSON_IsObject(functions)) {
    return InvalidArgument(source + ": \"functions\" must be an object of name -> function (got " +
                           Shown(functions) + ")");
  }
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, functions) {
    std::string name = item->string != nullptr ? item->string : "";
    if (out->count(name) != 0) {
      return InvalidArgument(source + ": function " + Quoted(name) + " is defined twice");
    }
    FunctionSpec spec;
    if (Status s = ParseFunctionSpec(name, item, source, &spec); !s.ok()) return s;
    (*out)[name] = std::make_shared<const FunctionSpec>(std::move(spec));
  }
  return Status::Ok();
}

// Percent-decodes `in` (the Invoke path parameter may arrive encoded: botocore sends
// "arn%3Aaws%3A..."). A valid reference never contains '%', so decoding cannot change
// the meaning of one. Returns false on a broken escape.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

// ---- names and enums ----

const char* ShimModeName(ShimMode mode) {
  switch (mode) {
    case ShimMode::kExec: return "exec";
    case ShimMode::kHttp: return "http";
    case ShimMode::kNative: return "native";
    case ShimMode::kPassthrough: return "passthrough";
  }
  return "exec";
}

Status ParseShimMode(std::string_view text, ShimMode* out) {
  if (text == "exec")
    *out = ShimMode::kExec;
  else if (text == "http")
    *out = ShimMode::kHttp;
  else if (text == "native")
    *out = ShimMode::kNative;
  else if (text == "passthrough")
    *out = ShimMode::kPassthrough;
  else {
    return InvalidArgument("must be \"exec\", \"http\", \"native\" or \"passthrough\" (got " +
                           Quoted(text) + ")");
  }
  return Status::Ok();
}

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kCold: return "cold";
  }
  return "cold";
}

Status ParsePolicy(std::string_view text, Policy* out) {
  if (text == "cold") {
    *out = Policy::kCold;
    return Status::Ok();
  }
  if (text == "warm" || text == "pool") {
    return InvalidArgument("policy " + Quoted(text) +
                           " is not supported yet: only \"cold\" (a fresh container per "
                           "invocation) is implemented");
  }
  return InvalidArgument("must be \"cold\" (got " + Quoted(text) + ")");
}

Status ValidateName(std::string_view name) {
  if (name.empty()) return InvalidArgument("function name is empty");
  if (name.size() > kNameMax) {
    return InvalidArgument("function name is " + std::to_string(name.size()) +
                           " characters long; the limit is 64");
  }
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    if (!ok) {
      return InvalidArgument("function name " + Quoted(name) + " contains " +
                             Quoted(std::string_view(&c, 1)) +
                             "; only letters, digits, '-' and '_' are allowed");
    }
  }
  return Status::Ok();
}

bool IsReservedEnvName(std::string_view key) {
  static const std::set<std::string_view> kReserved = {
      "_HANDLER",
      "_X_AMZN_TRACE_ID",
      "AWS_REGION",
      "AWS_DEFAULT_REGION",
      "AWS_EXECUTION_ENV",
      "AWS_LAMBDA_FUNCTION_NAME",
      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
      "AWS_LAMBDA_FUNCTION_VERSION",
      "AWS_LAMBDA_INITIALIZATION_TYPE",
      "AWS_LAMBDA_LOG_GROUP_NAME",
      "AWS_LAMBDA_LOG_STREAM_NAME",
      "AWS_ACCESS_KEY",
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_LAMBDA_RUNTIME_API",
      "LAMBDA_TASK_ROOT",
      "LAMBDA_RUNTIME_DIR",
  };
  return kReserved.count(key) != 0;
}

// ---- the manifest / state file spec object ----

Status ParseFunctionSpec(std::string_view name, const cJSON* obj, std::string_view source,
                         FunctionSpec* out) {
  FunctionSpec s;
  s.name = std::string(name);
  if (Status st = ValidateName(name); !st.ok()) {
    std::string m(source);
    if (!m.empty()) m += ": ";
    return InvalidArgument(m + st.message());
  }
  if (!cJSON_IsObject(obj)) {
    std::string m(source);
    if (!m.empty()) m += ": ";
    return InvalidArgument(m + "function " + Quoted(name) + ": must be an object (got " +
                           Shown(obj) + ")");
  }
  bool has_image = false;
  std::string problem;
  std::set<std::string_view> seen;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, obj) {
    std::string_view field = item->string != nullptr ? item->string : "";
    auto bad = [&]() { return FieldError(source, name, field, problem); };
    if (!seen.insert(field).second) {
      problem = "appears twice";
      return bad();
    }
    int64_t n = 0;
    if (field == "image") {
      if (!ReadString(item, &s.image, &problem)) return bad();
      if (!ValidImage(s.image)) {
        problem =
            "must be an image reference such as \"ephemera/echo:latest\" (got " + Shown(item) + ")";
        return bad();
      }
      s.image = NormalizeImage(s.image);
      has_image = true;
    } else if (field == "mode") {
      std::string text;
      if (!ReadString(item, &text, &problem)) return bad();
      if (Status st = ParseShimMode(text, &s.mode); !st.ok()) {
        problem = st.message();
        return bad();
      }
    } else if (field == "policy") {
      std::string text;
      if (!ReadString(item, &text, &problem)) return bad();
      if (Status st = ParsePolicy(text, &s.policy); !st.ok()) {
        problem = st.message();
        return bad();
      }
    } else if (field == "timeout") {
      if (!ReadInt(item, kTimeoutMin, kTimeoutMax, &n, &problem)) return bad();
      s.timeout_s = static_cast<int>(n);
    } else if (field == "memory") {
      if (!ReadInt(item, kMemoryMin, kMemoryMax, &n, &problem)) return bad();
      s.memory_mb = static_cast<int>(n);
    } else if (field == "environment") {
      if (!cJSON_IsObject(item)) {
        problem = "must be an object of string values (got " + Shown(item) + ")";
        return bad();
      }
      const cJSON* var = nullptr;
      cJSON_ArrayForEach(var, item) {
        std::string key = var->string != nullptr ? var->string : "";
        if (std::string p = EnvKeyProblem(key); !p.empty()) {
          problem = p;
          return bad();
        }
        if (!cJSON_IsString(var)) {
          problem = "value of " + Quoted(key) + " must be a string (got " + Shown(var) + ")";
          return bad();
        }
        s.environment[key] = var->valuestring;
      }
    } else if (field == "command") {
      if (!ReadArgv(item, &s.command, &problem)) return bad();
    } else if (field == "args") {
      if (!ReadArgv(item, &s.args, &problem)) return bad();
    } else if (field == "working_dir") {
      if (!ReadString(item, &s.working_dir, &problem)) return bad();
    } else if (field == "http_port") {
      if (!ReadInt(item, 0, 65535, &n, &problem)) return bad();
      s.http_port = static_cast<int>(n);
    } else if (field == "http_path") {
      if (!ReadString(item, &s.http_path, &problem)) return bad();
    } else if (field == "network") {
      if (!ReadString(item, &s.network, &problem)) return bad();
    } else if (field == "concurrency") {
      if (!ReadInt(item, 0, kConcurrencyMax, &n, &problem)) return bad();
      s.concurrency = static_cast<int>(n);
    } else if (field == "description") {
      if (!ReadString(item, &s.description, &problem)) return bad();
    } else if (field == "role") {
      if (!ReadString(item, &s.role, &problem)) return bad();
    } else if (field == "last_modified_ms") {
      if (!ReadInt(item, 0, int64_t{1} << 50, &n, &problem)) return bad();
      s.last_modified_ms = n;
    } else if (field == "comment") {
      // Free text for whoever edits the file; ignored.
    } else {
      problem =
          "unknown field (known: image, mode, policy, timeout, memory, environment, command, "
          "args, working_dir, http_port, http_path, network, concurrency, description, role, "
          "comment)";
      return bad();
    }
  }
  if (!has_image) {
    return FieldError(source, name, "image", "is required");
  }
  if (Status st = ValidateSpec(s, source); !st.ok()) return st;
  *out = std::move(s);
  return Status::Ok();
}

json::Json SpecToJson(const FunctionSpec& s) {
  json::Json obj = json::NewObject();
  cJSON* o = obj.get();
  cJSON_AddStringToObject(o, "image", s.image.c_str());
  cJSON_AddStringToObject(o, "mode", ShimModeName(s.mode));
  if (s.policy != Policy::kCold) cJSON_AddStringToObject(o, "policy", PolicyName(s.policy));
  cJSON_AddNumberToObject(o, "timeout", s.timeout_s);
  cJSON_AddNumberToObject(o, "memory", s.memory_mb);
  if (!s.environment.empty()) {
    cJSON* env = cJSON_AddObjectToObject(o, "environment");
    for (const auto& [k, v] : s.environment) cJSON_AddStringToObject(env, k.c_str(), v.c_str());
  }
  if (!s.command.empty()) json::AddStringArray(o, "command", s.command);
  if (!s.args.empty()) json::AddStringArray(o, "args", s.args);
  if (!s.working_dir.empty()) cJSON_AddStringToObject(o, "working_dir", s.working_dir.c_str());
  if (s.http_port != 8080) cJSON_AddNumberToObject(o, "http_port", s.http_port);
  if (s.http_path != "/") cJSON_AddStringToObject(o, "http_path", s.http_path.c_str());
  if (s.network != "host") cJSON_AddStringToObject(o, "network", s.network.c_str());
  if (s.concurrency != 0) cJSON_AddNumberToObject(o, "concurrency", s.concurrency);
  if (!s.description.empty()) cJSON_AddStringToObject(o, "description", s.description.c_str());
  if (s.role != kDefaultRole) cJSON_AddStringToObject(o, "role", s.role.c_str());
  cJSON_AddNumberToObject(o, "last_modified_ms", static_cast<double>(s.last_modified_ms));
  return obj;
}

// ---- Registry ----

Status Registry::Open(std::string manifest_path, std::string state_path,
                      std::unique_ptr<Registry>* out) {
  std::unique_ptr<Registry> r(new Registry());
  r->manifest_path_ = std::move(manifest_path);
  r->state_path_ = std::move(state_path);

  if (!r->manifest_path_.empty()) {
    const std::string& path = r->manifest_path_;
    std::string text;
    if (Status s = ReadWholeFile(path, "registry manifest", &text); !s.ok()) return s;
    json::Json root;
    if (Status s = ParseJsonFile(path, text, "registry manifest", &root); !s.ok()) return s;
    const cJSON* item = nullptr;
    cJSON_ArrayForEach(item, root.get()) {
      std::string_view key = item->string != nullptr ? item->string : "";
      if (key != "functions" && key != "comment") {
        return InvalidArgument(path + ": unknown top-level field " + Quoted(key) +
                               " (known: functions, comment)");
      }
    }
    const cJSON* functions = cJSON_GetObjectItemCaseSensitive(root.get(), "functions");
    if (functions == nullptr) {
      return InvalidArgument(path + ": missing \"functions\" (an object of name -> function)");
    }
    if (Status s = ParseFunctionMap(functions, path, &r->manifest_); !s.ok()) return s;
    int64_t mtime = MtimeMs(path);
    for (auto& [name, spec] : r->manifest_) {
      auto copy = std::make_shared<FunctionSpec>(*spec);
      copy->from_manifest = true;
      if (copy->last_modified_ms == 0) copy->last_modified_ms = mtime;
      spec = std::move(copy);
    }
  }

  if (!r->state_path_.empty()) {
    const std::string& path = r->state_path_;
    std::string text;
    Status read = ReadWholeFile(path, "registry state", &text);
    if (!read.ok() && read.code() != StatusCode::kNotFound) return read;
    if (read.ok()) {
      json::Json root;
      if (Status s = ParseJsonFile(path, text, "registry state", &root); !s.ok()) {
        return InvalidArgument(s.message() +
                               "; it holds the functions created through the API, so it is not "
                               "ignored: repair it or delete it to start with none");
      }
      const cJSON* item = nullptr;
      cJSON_ArrayForEach(item, root.get()) {
        std::string_view key = item->string != nullptr ? item->string : "";
        if (key == "version") {
          if (!cJSON_IsNumber(item) || item->valuedouble != 1) {
            return InvalidArgument(path + ": unsupported registry state version " + Shown(item) +
                                   " (this build reads version 1)");
          }
        } else if (key == "functions") {
          if (Status s = ParseFunctionMap(item, path, &r->created_); !s.ok()) return s;
        } else if (key == "removed") {
          auto names = json::GetStringArray(root.get(), "removed");
          if (!names) {
            return InvalidArgument(path + ": \"removed\" must be an array of function names");
          }
          r->removed_ = std::move(*names);
        } else {
          return InvalidArgument(path + ": unknown top-level field " + Quoted(key) +
                                 " (known: version, functions, removed)");
        }
      }
      for (auto& [name, spec] : r->created_) {
        auto copy = std::make_shared<FunctionSpec>(*spec);
        copy->from_manifest = false;
        spec = std::move(copy);
      }
    }
  }

  r->Rebuild();
  *out = std::move(r);
  return Status::Ok();
}

void Registry::Rebuild() {
  visible_.clear();
  for (const auto& [name, spec] : manifest_) {
    if (std::find(removed_.begin(), removed_.end(), name) == removed_.end()) {
      visible_[name] = spec;
    }
  }
  for (const auto& [name, spec] : created_) visible_[name] = spec;
}

std::shared_ptr<const FunctionSpec> Registry::Find(std::string_view name) const {
  auto it = visible_.find(name);
  return it == visible_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const FunctionSpec>> Registry::List() const {
  std::vector<std::shared_ptr<const FunctionSpec>> out;
  out.reserve(visible_.size());
  for (const auto& [name, spec] : visible_) out.push_back(spec);  // std::map: sorted by name
  return out;
}

Status Registry::Create(FunctionSpec spec) {
  spec.from_manifest = false;
  if (spec.last_modified_ms == 0) spec.last_modified_ms = NowMs();
  if (ValidImage(spec.image)) spec.image = NormalizeImage(spec.image);
  if (Status s = ValidateSpec(spec, ""); !s.ok()) return s;
  if (visible_.count(spec.name) != 0) {
    return Conflict("function " + Quoted(spec.name) + " already exists");
  }
  auto created = created_;
  std::string name = spec.name;
  created[name] = std::make_shared<const FunctionSpec>(std::move(spec));
  if (Status s = Persist(created, removed_); !s.ok()) return s;
  created_ = std::move(created);
  Rebuild();
  return Status::Ok();
}

Status Registry::Remove(std::string_view name_view) {
  std::string name(name_view);
  if (visible_.count(name) == 0) {
    return NotFound("function " + Quoted(name) + " does not exist");
  }
  auto created = created_;
  auto removed = removed_;
  created.erase(name);
  if (manifest_.count(name) != 0 &&
      std::find(removed.begin(), removed.end(), name) == removed.end()) {
    removed.push_back(name);
    std::sort(removed.begin(), removed.end());
  }
  if (Status s = Persist(created, removed); !s.ok()) return s;
  created_ = std::move(created);
  removed_ = std::move(removed);
  Rebuild();
  return Status::Ok();
}

Status Registry::Persist(const std::map<std::string, std::shared_ptr<const FunctionSpec>>& created,
                         const std::vector<std::string>& removed) const {
  if (state_path_.empty()) return Status::Ok();
  json::Json root = json::NewObject();
  cJSON_AddNumberToObject(root.get(), "version", 1);
  cJSON* functions = cJSON_AddObjectToObject(root.get(), "functions");
  for (const auto& [name, spec] : created) {
    cJSON_AddItemToObject(functions, name.c_str(), SpecToJson(*spec).release());
  }
  json::AddStringArray(root.get(), "removed", removed);
  char* text = cJSON_Print(root.get());
  if (text == nullptr) return Internal("cannot serialise the registry state (out of memory)");
  std::string body(text);
  cJSON_free(text);
  body += '\n';
  if (Status s = WriteFileAtomically(state_path_, body); !s.ok()) {
    return Internal("registry state not saved: " + s.message());
  }
  return Status::Ok();
}

// ---- Lambda control plane ----

std::string FunctionArn(std::string_view name) {
  return kArnPrefix + std::string(name);
}

std::string FormatLastModified(int64_t epoch_ms) {
  if (epoch_ms < 0) epoch_ms = 0;
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d+0000", static_cast<int>(epoch_ms % 1000));
  return buf;
}

Status SpecFromCreateFunction(const cJSON* req, FunctionSpec* out) {
  if (!cJSON_IsObject(req)) return InvalidArgument("the request body must be a JSON object");
  FunctionSpec s;
  s.from_manifest = false;
  std::string problem;
  auto field_error = [&](std::string_view field) {
    return InvalidArgument(std::string(field) + " " + problem);
  };

  // FunctionName: a name or an ARN of one (CreateFunction accepts both), no qualifier.
  const cJSON* fn = cJSON_GetObjectItemCaseSensitive(req, "FunctionName");
  if (fn == nullptr) return InvalidArgument("FunctionName is required");
  std::string ref, qualifier;
  if (!ReadString(fn, &ref, &problem)) return field_error("FunctionName");
  if (Status st = ParseFunctionRef(ref, &s.name, &qualifier); !st.ok()) {
    return InvalidArgument("FunctionName: " + st.message());
  }
  if (!qualifier.empty()) {
    return InvalidArgument("FunctionName must not carry a qualifier (got " + Quoted(ref) + ")");
  }
  if (Status st = ValidateName(s.name); !st.ok()) {
    return InvalidArgument("FunctionName: " + st.message());
  }

  // PackageType and Code: only images. AWS defaults PackageType to Zip; we infer Image when
  // an ImageUri is given, since nothing else could be meant.
  const cJSON* code = cJSON_GetObjectItemCaseSensitive(req, "Code");
  const cJSON* pt = cJSON_GetObjectItemCaseSensitive(req, "PackageType");
  std::string package_type;
  if (pt != nullptr && !ReadString(pt, &package_type, &problem)) {
    return field_error("PackageType");
  }
  bool has_zip = code != nullptr && (cJSON_GetObjectItemCaseSensitive(code, "ZipFile") ||
                                     cJSON_GetObjectItemCaseSensitive(code, "S3Bucket"));
  bool has_uri = code != nullptr && cJSON_GetObjectItemCaseSensitive(code, "ImageUri");
  if (package_type.empty()) package_type = has_uri ? "Image" : "Zip";
  if (package_type == "Zip" || (has_zip && !has_uri)) {
    return InvalidArgument(
        "PackageType Zip is not supported: ephemera runs container images (send PackageType "
        "Image and Code.ImageUri)");
  }
  if (package_type != "Image") {
    return InvalidArgument("PackageType must be \"Image\" (got " + Quoted(package_type) + ")");
  }
  if (code != nullptr && !cJSON_IsObject(code)) {
    return InvalidArgument("Code must be an object (got " + Shown(code) + ")");
  }
  if (!has_uri) return InvalidArgument("Code.ImageUri is required for PackageType Image");
  if (!ReadString(cJSON_GetObjectItemCaseSensitive(code, "ImageUri"), &s.image, &problem)) {
    return field_error("Code.ImageUri");
  }
  if (!ValidImage(s.image)) {
    return InvalidArgument(
        "Code.ImageUri must be an image reference such as "
        "\"ephemera/echo:latest\" (got " +
        Quoted(s.image) + ")");
  }
  s.image = NormalizeImage(s.image);

  int64_t n = 0;
  if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(req, "Timeout"); it != nullptr) {
    if (!ReadInt(it, kTimeoutMin, kTimeoutMax, &n, &problem)) return field_error("Timeout");
    s.timeout_s = static_cast<int>(n);
  }
  if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(req, "MemorySize"); it != nullptr) {
    if (!ReadInt(it, kMemoryMin, kMemoryMax, &n, &problem)) return field_error("MemorySize");
    s.memory_mb = static_cast<int>(n);
  }
  if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(req, "Description"); it != nullptr) {
    if (!ReadString(it, &s.description, &problem)) return field_error("Description");
    if (s.description.size() > kDescriptionMax) {
      return InvalidArgument("Description must be at most 256 characters");
    }
  }
  if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(req, "Role"); it != nullptr) {
    if (!ReadString(it, &s.role, &problem)) return field_error("Role");
    if (s.role.empty()) s.role = kDefaultRole;
  }

  // ImageConfig: EntryPoint [+ Command] is the whole argv; Command alone replaces CMD.
  if (const cJSON* ic = cJSON_GetObjectItemCaseSensitive(req, "ImageConfig"); ic != nullptr) {
    if (!cJSON_IsObject(ic)) {
      return InvalidArgument("ImageConfig must be an object (got " + Shown(ic) + ")");
    }
    std::vector<std::string> entry, command;
    if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(ic, "EntryPoint"); it != nullptr) {
      if (!ReadArgv(it, &entry, &problem)) return field_error("ImageConfig.EntryPoint");
    }
    if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(ic, "Command"); it != nullptr) {
      if (!ReadArgv(it, &command, &problem)) return field_error("ImageConfig.Command");
    }
    if (!entry.empty()) {
      s.command = entry;
      s.command.insert(s.command.end(), command.begin(), command.end());
    } else {
      s.args = command;
    }
    if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(ic, "WorkingDirectory"); it != nullptr) {
      if (!ReadString(it, &s.working_dir, &problem)) {
        return field_error("ImageConfig.WorkingDirectory");
      }
      if (!s.working_dir.empty() && s.working_dir[0] != '/') {
        return InvalidArgument("ImageConfig.WorkingDirectory must be an absolute path (got " +
                               Quoted(s.working_dir) + ")");
      }
    }
  }

  // Environment.Variables, with EPHEMERA_* settings taken out.
  std::map<std::string, std::string> settings;
  if (const cJSON* env = cJSON_GetObjectItemCaseSensitive(req, "Environment"); env != nullptr) {
    if (!cJSON_IsObject(env)) {
      return InvalidArgument("Environment must be an object (got " + Shown(env) + ")");
    }
    const cJSON* vars = cJSON_GetObjectItemCaseSensitive(env, "Variables");
    if (vars != nullptr && !cJSON_IsObject(vars)) {
      return InvalidArgument("Environment.Variables must be an object of string values (got " +
                             Shown(vars) + ")");
    }
    const cJSON* var = nullptr;
    cJSON_ArrayForEach(var, vars) {
      std::string key = var->string != nullptr ? var->string : "";
      if (!cJSON_IsString(var)) {
        return InvalidArgument("Environment.Variables." + key + " must be a string (got " +
                               Shown(var) + ")");
      }
      if (StartsWith(key, kEphemeraPrefix)) {
        settings[key] = var->valuestring;
        continue;
      }
      if (std::string p = EnvKeyProblem(key); !p.empty()) {
        return InvalidArgument("Environment.Variables: " + p);
      }
      s.environment[key] = var->valuestring;
    }
  }
  if (const cJSON* it = cJSON_GetObjectItemCaseSensitive(req, "EphemeraMode"); it != nullptr) {
    std::string mode;
    if (!ReadString(it, &mode, &problem)) return field_error("EphemeraMode");
    auto env_mode = settings.find("EPHEMERA_MODE");
    if (env_mode != settings.end() && env_mode->second != mode) {
      return InvalidArgument("EphemeraMode " + Quoted(mode) +
                             " contradicts Environment.Variables.EPHEMERA_MODE " +
                             Quoted(env_mode->second));
    }
    settings["EPHEMERA_MODE"] = mode;
  }
  auto int_setting = [&](const std::string& key, const std::string& text, int64_t lo, int64_t hi,
                         int* dst) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
      return InvalidArgument("Environment.Variables." + key + " must be an integer " +
                             std::to_string(lo) + ".." + std::to_string(hi) + " (got " +
                             Quoted(text) + ")");
    }
    *dst = static_cast<int>(v);
    return Status::Ok();
  };
  for (const auto& [key, value] : settings) {
    std::string where =
        key == "EPHEMERA_MODE" && cJSON_GetObjectItemCaseSensitive(req, "EphemeraMode") != nullptr
            ? "EphemeraMode"
            : "Environment.Variables." + key;
    if (key == "EPHEMERA_MODE") {
      if (Status st = ParseShimMode(value, &s.mode); !st.ok()) {
        return InvalidArgument(where + " " + st.message());
      }
    } else if (key == "EPHEMERA_POLICY") {
      if (Status st = ParsePolicy(value, &s.policy); !st.ok()) {
        return InvalidArgument(where + ": " + st.message());
      }
    } else if (key == "EPHEMERA_NETWORK") {
      if (!ValidNetwork(value)) {
        return InvalidArgument(where + " must be \"host\", \"bridge\" or \"none\" (got " +
                               Quoted(value) + ")");
      }
      s.network = value;
    } else if (key == "EPHEMERA_HTTP_PORT") {
      if (Status st = int_setting(key, value, 0, 65535, &s.http_port); !st.ok()) return st;
    } else if (key == "EPHEMERA_HTTP_PATH") {
      if (value.empty() || value[0] != '/') {
        return InvalidArgument(where + " must start with '/' (got " + Quoted(value) + ")");
      }
      s.http_path = value;
    } else if (key == "EPHEMERA_CONCURRENCY") {
      if (Status st = int_setting(key, value, 0, kConcurrencyMax, &s.concurrency); !st.ok()) {
        return st;
      }
    } else {
      return InvalidArgument(where +
                             " is not an ephemera setting (known: EPHEMERA_MODE, "
                             "EPHEMERA_POLICY, EPHEMERA_NETWORK, EPHEMERA_HTTP_PORT, "
                             "EPHEMERA_HTTP_PATH, EPHEMERA_CONCURRENCY)");
    }
  }
  if (s.mode != ShimMode::kHttp && (s.http_port != 8080 || s.http_path != "/")) {
    return InvalidArgument(std::string("Environment.Variables.") +
                           (s.http_port != 8080 ? "EPHEMERA_HTTP_PORT" : "EPHEMERA_HTTP_PATH") +
                           " is only used with EPHEMERA_MODE http");
  }

  // Backstop: everything a manifest entry must satisfy.
  if (Status st = ValidateSpec(s, "CreateFunction"); !st.ok()) return st;
  *out = std::move(s);
  return Status::Ok();
}

json::Json FunctionConfiguration(const FunctionSpec& s) {
  json::Json obj = json::NewObject();
  cJSON* o = obj.get();
  cJSON_AddStringToObject(o, "FunctionName", s.name.c_str());
  cJSON_AddStringToObject(o, "FunctionArn", FunctionArn(s.name).c_str());
  cJSON_AddStringToObject(o, "Role", s.role.c_str());
  cJSON_AddNumberToObject(o, "CodeSize", 0);
  cJSON_AddStringToObject(o, "Description", s.description.c_str());
  cJSON_AddNumberToObject(o, "Timeout", s.timeout_s);
  cJSON_AddNumberToObject(o, "MemorySize", s.memory_mb);
  cJSON_AddStringToObject(o, "LastModified", FormatLastModified(s.last_modified_ms).c_str());
  cJSON_AddStringToObject(o, "Version", "$LATEST");
  cJSON* vars = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "Environment"), "Variables");
  for (const auto& [k, v] : s.environment) cJSON_AddStringToObject(vars, k.c_str(), v.c_str());
  cJSON_AddStringToObject(vars, "EPHEMERA_MODE", ShimModeName(s.mode));
  if (s.policy != Policy::kCold) {
    cJSON_AddStringToObject(vars, "EPHEMERA_POLICY", PolicyName(s.policy));
  }
  if (s.network != "host") cJSON_AddStringToObject(vars, "EPHEMERA_NETWORK", s.network.c_str());
  if (s.http_port != 8080) {
    cJSON_AddStringToObject(vars, "EPHEMERA_HTTP_PORT", std::to_string(s.http_port).c_str());
  }
  if (s.http_path != "/") {
    cJSON_AddStringToObject(vars, "EPHEMERA_HTTP_PATH", s.http_path.c_str());
  }
  if (s.concurrency != 0) {
    cJSON_AddStringToObject(vars, "EPHEMERA_CONCURRENCY", std::to_string(s.concurrency).c_str());
  }
  cJSON_AddStringToObject(o, "PackageType", "Image");
  cJSON_AddStringToObject(o, "State", "Active");
  cJSON_AddStringToObject(o, "LastUpdateStatus", "Successful");
  cJSON* ic =
      cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "ImageConfigResponse"), "ImageConfig");
  if (!s.command.empty()) json::AddStringArray(ic, "EntryPoint", s.command);
  if (!s.args.empty()) json::AddStringArray(ic, "Command", s.args);
  if (!s.working_dir.empty()) {
    cJSON_AddStringToObject(ic, "WorkingDirectory", s.working_dir.c_str());
  }
  json::AddStringArray(o, "Architectures", {"x86_64"});
  return obj;
}

json::Json GetFunctionResult(const FunctionSpec& s) {
  json::Json obj = json::NewObject();
  cJSON_AddItemToObject(obj.get(), "Configuration", FunctionConfiguration(s).release());
  cJSON* code = cJSON_AddObjectToObject(obj.get(), "Code");
  cJSON_AddStringToObject(code, "RepositoryType", "ECR");
  cJSON_AddStringToObject(code, "ImageUri", s.image.c_str());
  cJSON_AddStringToObject(code, "ResolvedImageUri", s.image.c_str());
  return obj;
}

Status ParseFunctionRef(std::string_view ref, std::string* name, std::string* qualifier) {
  // PROTOCOLS.md §2, anchored. Groups: 7 = name, 9 = qualifier.
  static const std::regex kPattern(
      R"(^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?)"
      R"(([a-zA-Z0-9_.-]+)(:(\$LATEST|[a-zA-Z0-9_-]+))?$)");
  std::string text;
  if (!PercentDecode(ref, &text)) {
    return InvalidArgument("function name " + Quoted(ref) + " has a broken %-escape");
  }
  if (text.empty()) return InvalidArgument("function name is empty");
  if (text.size() > kRefMax) {
    return InvalidArgument("function name or ARN is " + std::to_string(text.size()) +
                           " characters long; the limit is 170");
  }
  std::smatch m;
  if (!std::regex_match(text, m, kPattern)) {
    return InvalidArgument("function name " + Quoted(text) +
                           " is not a name, \"name:qualifier\", or a Lambda function ARN "
                           "(arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>])");
  }
  if (m[7].length() > static_cast<long>(kNameMax)) {
    return InvalidArgument("function name " + Quoted(m[7].str()) + " is " +
                           std::to_string(m[7].length()) + " characters long; the limit is 64");
  }
  *name = m[7].str();
  *qualifier = m[9].matched ? m[9].str() : std::string();
  return Status::Ok();
}

}  // namespace ephemera::registry
