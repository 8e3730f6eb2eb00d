// registry/registry.cc: specs, validation, the manifest and state files, and the Lambda
// control-plane mapping. See registry.h for the contract and README.md for the file shapes.
#include "registry/registry.h"

#include <arpa/inet.h>
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
constexpr int kIdleTtlMin = 1, kIdleTtlMax = 3600;
constexpr int kPoolMin = 1, kPoolMax = 100;
constexpr int kQueueSizeMax = 10000;
constexpr int kQueueTimeoutMin = 1, kQueueTimeoutMax = 900;
constexpr int kTmpSizeMin = 1, kTmpSizeMax = 10240;
constexpr int kPidsMin = 8, kPidsMax = 65536;
constexpr int kNofileMin = 64, kNofileMax = 1048576;
constexpr size_t kImageMax = 255;
constexpr size_t kTagMax = 128;
constexpr size_t kUserPartMax = 32;
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

bool ReadBool(const cJSON* item, bool* out, std::string* problem) {
  if (cJSON_IsBool(item)) {
    *out = cJSON_IsTrue(item) != 0;
    return true;
  }
  *problem = "must be true or false (got " + Shown(item) + ")";
  return false;
}

// An array of strings, possibly empty.
bool ReadStringList(const cJSON* item, std::vector<std::string>* out, std::string* problem) {
  *problem = "must be an array of strings (got " + Shown(item) + ")";
  if (!cJSON_IsArray(item)) return false;
  std::vector<std::string> list;
  const cJSON* el = nullptr;
  cJSON_ArrayForEach(el, item) {
    if (!cJSON_IsString(el) || el->valuestring == nullptr) return false;
    list.emplace_back(el->valuestring);
  }
  *out = std::move(list);
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

// ---- character classes (ASCII only: references and names are ASCII) ----

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsLower(char c) {
  return c >= 'a' && c <= 'z';
}
bool IsUpper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool IsAlnum(char c) {
  return IsDigit(c) || IsLower(c) || IsUpper(c);
}
bool IsLowerAlnum(char c) {
  return IsDigit(c) || IsLower(c);
}
bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

// A port of 1..65535 written as 1..5 digits.
bool ParsePort(std::string_view text, int* out) {
  if (!AllDigits(text) || text.size() > 5) return false;
  int v = 0;
  for (char c : text) v = v * 10 + (c - '0');
  if (v < 1 || v > 65535) return false;
  *out = v;
  return true;
}

// [a-zA-Z0-9] or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9], at most 63 characters.
bool ValidDnsLabel(std::string_view l) {
  if (l.empty() || l.size() > 63 || !IsAlnum(l.front()) || !IsAlnum(l.back())) return false;
  return std::all_of(l.begin(), l.end(), [](char c) { return IsAlnum(c) || c == '-'; });
}

// A DNS name or, when every label is numeric, a dotted-quad IPv4 address.
bool ValidHostName(std::string_view n) {
  if (n.empty() || n.size() > 253) return false;
  std::vector<std::string_view> labels;
  size_t start = 0;
  for (;;) {
    size_t dot = n.find('.', start);
    labels.push_back(n.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!std::all_of(labels.begin(), labels.end(), ValidDnsLabel)) return false;
  if (std::all_of(labels.begin(), labels.end(), AllDigits)) {
    in_addr addr{};
    return inet_pton(AF_INET, std::string(n).c_str(), &addr) == 1;
  }
  return true;
}

// The inside of "[...]".
bool ValidIpv6(std::string_view a) {
  in6_addr addr{};
  return !a.empty() && a.size() <= 45 && inet_pton(AF_INET6, std::string(a).c_str(), &addr) == 1;
}

// Splits "host[:port]" / "[v6][:port]". `port` is "" when absent. False if malformed.
bool SplitHostPort(std::string_view text, std::string_view* host, std::string_view* port,
                   bool* bracketed) {
  *port = {};
  *bracketed = !text.empty() && text.front() == '[';
  if (*bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    *host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    *port = rest.substr(1);
    return !port->empty();
  }
  size_t colon = text.find(':');
  *host = text.substr(0, colon);
  if (colon == std::string_view::npos) return true;
  *port = text.substr(colon + 1);
  return !port->empty();
}

// ---- image references (Docker's reference grammar) ----

// [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// Empty when `ref` is a valid reference, else what is wrong, as a clause.
std::string ImageProblem(std::string_view ref) {
  if (ref.empty()) return "it is empty";
  for (char c : ref) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ') return "it contains a space";
    if (u < ' ' || u == 0x7f) return "it contains a control character";
    if (u >= 0x80) return "it contains a non-ASCII character";
  }
  std::string_view name = ref;
  bool has_digest = false, has_tag = false;
  if (size_t at = name.find('@'); at != std::string_view::npos) {
    std::string_view digest = name.substr(at + 1);
    name = name.substr(0, at);
    has_digest = true;
    constexpr std::string_view kAlgorithm = "sha256:";
    std::string_view hex = digest.substr(std::min(digest.size(), kAlgorithm.size()));
    bool ok = StartsWith(digest, kAlgorithm) && hex.size() == 64 &&
              std::all_of(hex.begin(), hex.end(),
                          [](char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); });
    if (!ok) {
      return "the digest after '@' must be \"sha256:\" and 64 lowercase hex digits (got " +
             Quoted(digest) + ")";
    }
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    has_tag = true;
    if (tag.empty()) return "the tag after ':' is empty";
    if (tag.size() > kTagMax) {
      return "the tag is " + std::to_string(tag.size()) + " characters long; the limit is 128";
    }
    bool ok = (IsAlnum(tag[0]) || tag[0] == '_') && std::all_of(tag.begin(), tag.end(), [](char c) {
                return IsAlnum(c) || c == '_' || c == '.' || c == '-';
              });
    if (!ok) return "the tag " + Quoted(tag) + " must match [A-Za-z0-9_][A-Za-z0-9_.-]*";
  }
  if (name.empty()) return "the repository name is empty";
  std::string_view path = name;
  if (size_t first = name.find('/'); first != std::string_view::npos) {
    // Docker's rule: the first part names a registry if it has '.' or ':', is "localhost",
    // or has upper case (a repository path never does).
    std::string_view head = name.substr(0, first);
    if (head.find_first_of(".:") != std::string_view::npos || head == "localhost" ||
        std::any_of(head.begin(), head.end(), IsUpper)) {
      std::string_view host, port;
      bool bracketed = false;
      int port_number = 0;
      bool ok = SplitHostPort(head, &host, &port, &bracketed) &&
                (bracketed ? ValidIpv6(host) : ValidHostName(host)) &&
                (port.empty() || ParsePort(port, &port_number));
      if (!ok) {
        return "the registry " + Quoted(head) +
               " must be a host name or IP address with an optional :port";
      }
      path = name.substr(first + 1);
    }
  }
  size_t start = 0;
  for (;;) {
    size_t end = path.find('/', start);
    std::string_view comp = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (comp.empty()) return "it has an empty path component (\"//\", or a '/' at an end)";
    if (!ValidPathComponent(comp)) {
      return "the path component " + Quoted(comp) +
             " must be lowercase letters and digits, separated by '.', '_', '__' or dashes";
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  size_t stored = ref.size() + (has_tag || has_digest ? 0 : std::strlen(":latest"));
  if (stored > kImageMax) {
    return "it is " + std::to_string(stored) + " characters long" +
           (stored != ref.size() ? std::string(" with the \":latest\" added") : std::string()) +
           "; the limit is 255";
  }
  return {};
}

std::string ImageError(std::string_view image) {
  return "is not a valid image reference: " + ImageProblem(image) + " (got " + Quoted(image) +
         "); write it like \"ephemera/echo:latest\" or \"localhost:5000/team/app:1.0\"";
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

// ---- the other field rules ----

bool ValidNetwork(std::string_view n) {
  return n == "isolated" || n == "host" || n == "bridge" || n == "none";
}
constexpr char kNetworkChoices[] = "must be \"isolated\", \"host\", \"bridge\" or \"none\"";

// The Linux capabilities (capabilities(7)), without the CAP_ prefix.
bool IsLinuxCapability(std::string_view name) {
  static const std::set<std::string_view> kCapabilities = {
      "AUDIT_CONTROL",   "AUDIT_READ",   "AUDIT_WRITE",
      "BLOCK_SUSPEND",   "BPF",          "CHECKPOINT_RESTORE",
      "CHOWN",           "DAC_OVERRIDE", "DAC_READ_SEARCH",
      "FOWNER",          "FSETID",       "IPC_LOCK",
      "IPC_OWNER",       "KILL",         "LEASE",
      "LINUX_IMMUTABLE", "MAC_ADMIN",    "MAC_OVERRIDE",
      "MKNOD",           "NET_ADMIN",    "NET_BIND_SERVICE",
      "NET_BROADCAST",   "NET_RAW",      "PERFMON",
      "SETFCAP",         "SETGID",       "SETPCAP",
      "SETUID",          "SYS_ADMIN",    "SYS_BOOT",
      "SYS_CHROOT",      "SYS_MODULE",   "SYS_NICE",
      "SYS_PACCT",       "SYS_PTRACE",   "SYS_RAWIO",
      "SYS_RESOURCE",    "SYS_TIME",     "SYS_TTY_CONFIG",
      "SYSLOG",          "WAKE_ALARM",
  };
  return kCapabilities.count(name) != 0;
}

std::string_view WithoutCapPrefix(std::string_view cap) {
  return StartsWith(cap, "CAP_") ? cap.substr(4) : cap;
}

// Empty when every entry is a capability and none repeats, else the problem.
std::string CapAddProblem(const std::vector<std::string>& caps) {
  std::set<std::string_view> seen;
  for (const std::string& cap : caps) {
    bool grammar = !cap.empty() && std::all_of(cap.begin(), cap.end(),
                                               [](char c) { return IsUpper(c) || c == '_'; });
    if (!grammar) return "entry " + Quoted(cap) + " must match [A-Z_]+, e.g. \"NET_BIND_SERVICE\"";
    std::string_view bare = WithoutCapPrefix(cap);
    if (bare == "ALL") {
      return "\"" + cap +
             "\" is refused: name the capabilities the function needs, or set "
             "drop_capabilities to false to keep the engine's default set";
    }
    if (!IsLinuxCapability(bare)) {
      return "entry " + Quoted(cap) + " is not a Linux capability (see capabilities(7))";
    }
    if (!seen.insert(bare).second) return "entry " + Quoted(cap) + " appears twice";
  }
  return {};
}

// Empty when `user` is "", "root" or "user[:group]" of numbers or names, else the problem.
std::string UserProblem(std::string_view user) {
  if (user.empty()) return {};
  std::string want =
      "must be \"root\", a uid or a user name, optionally followed by \":\" and a gid or a "
      "group name (got " +
      Quoted(user) + ")";
  size_t colon = user.find(':');
  std::vector<std::string_view> parts = {user.substr(0, colon)};
  if (colon != std::string_view::npos) parts.push_back(user.substr(colon + 1));
  for (std::string_view p : parts) {
    if (p.empty() || p.size() > kUserPartMax) return want;
    if (AllDigits(p)) {
      if (p.size() > 10 || std::stoull(std::string(p)) > 4294967294ULL) {
        return "id " + std::string(p) + " is out of range (0..4294967294)";
      }
      continue;
    }
    bool ok = (IsAlnum(p[0]) && !IsDigit(p[0])) || p[0] == '_';
    ok = ok && std::all_of(p.begin(), p.end(),
                           [](char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; });
    if (!ok) return want;
  }
  return {};
}

// Empty when every entry parses and no two name the same host and port, else the problem.
std::string ForwardProblem(const std::vector<std::string>& forward) {
  std::set<std::pair<std::string, int>> seen;
  for (const std::string& entry : forward) {
    ForwardTarget t;
    if (Status st = ParseForward(entry, &t); !st.ok()) return st.message();
    if (!seen.insert({t.host, t.port}).second) {
      return "entry " + Quoted(entry) + " names " + t.host + ":" + std::to_string(t.port) +
             " again";
    }
  }
  return {};
}

constexpr size_t kStorePatternMax = 128;
constexpr size_t kStorePrefixesMax = 32;

// Empty when the store's prefixes are usable (ValidateStorePrefix each, at least one, at
// most 32, no duplicates), else the problem.
std::string StoreProblem(const StoreSettings& store) {
  if (store.prefixes.size() > kStorePrefixesMax) {
    return "at most 32 key patterns (got " + std::to_string(store.prefixes.size()) + ")";
  }
  std::set<std::string> seen;
  for (const std::string& p : store.prefixes) {
    if (Status st = ValidateStorePrefix(p); !st.ok()) return st.message();
    if (!seen.insert(p).second) return "key pattern " + Quoted(p) + " appears twice";
  }
  return {};
}

size_t EnvironmentBytes(const std::map<std::string, std::string>& env) {
  size_t total = 0;
  for (const auto& [k, v] : env) total += k.size() + v.size();
  return total;
}

std::string EnvironmentSizeProblem(size_t bytes) {
  return "the variables take " + std::to_string(bytes) +
         " bytes (keys plus values); the limit, as in Lambda, is 4096 bytes in total";
}

// Empty when `path` can go into an HTTP request line, else the problem.
std::string HttpPathProblem(std::string_view path) {
  if (path.empty() || path[0] != '/') return "must start with '/' (got " + Quoted(path) + ")";
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f) {
      return "must not contain spaces or control characters (got " + Quoted(path) + ")";
    }
  }
  return {};
}

bool HasNul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

// The name of the first string field of `s` holding a NUL character, or "".
std::string FieldWithNul(const FunctionSpec& s) {
  auto any = [](const std::vector<std::string>& v) {
    return std::any_of(v.begin(), v.end(), HasNul);
  };
  if (HasNul(s.image)) return "image";
  for (const auto& [k, v] : s.environment) {
    if (HasNul(k) || HasNul(v)) return "environment";
  }
  if (any(s.command)) return "command";
  if (any(s.args)) return "args";
  if (HasNul(s.working_dir)) return "working_dir";
  if (HasNul(s.http_path)) return "http_path";
  if (HasNul(s.network)) return "network";
  if (any(s.security.cap_add)) return "security.cap_add";
  if (HasNul(s.security.user)) return "security.user";
  if (any(s.forward)) return "forward";
  if (any(s.store.prefixes)) return "store.prefixes";
  if (HasNul(s.description)) return "description";
  if (HasNul(s.role)) return "role";
  return {};
}

const FunctionSpec& Defaults() {
  static const FunctionSpec kDefaults;
  return kDefaults;
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
  if (std::string field = FieldWithNul(s); !field.empty()) {
    return FieldError(source, s.name, field,
                      "contains a NUL character, which a container's argv and environment "
                      "cannot carry");
  }
  if (std::string p = ImageProblem(s.image); !p.empty()) {
    return FieldError(source, s.name, "image", ImageError(s.image));
  }
  if (Status st = range("timeout", s.timeout_s, kTimeoutMin, kTimeoutMax); !st.ok()) return st;
  if (Status st = range("memory", s.memory_mb, kMemoryMin, kMemoryMax); !st.ok()) return st;
  for (const auto& [key, value] : s.environment) {
    if (std::string p = EnvKeyProblem(key); !p.empty()) {
      return FieldError(source, s.name, "environment", p);
    }
  }
  if (size_t bytes = EnvironmentBytes(s.environment); bytes > kEnvironmentMaxBytes) {
    return FieldError(source, s.name, "environment", EnvironmentSizeProblem(bytes));
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
  if (std::string p = HttpPathProblem(s.http_path); !p.empty()) {
    return FieldError(source, s.name, "http_path", p);
  }
  if (s.mode != ShimMode::kHttp && (s.http_port != 8080 || s.http_path != "/")) {
    return FieldError(
        source, s.name, s.http_port != 8080 ? "http_port" : "http_path",
        std::string("is only used in mode \"http\" (mode is \"") + ShimModeName(s.mode) + "\")");
  }
  if (!ValidNetwork(s.network)) {
    return FieldError(source, s.name, "network",
                      std::string(kNetworkChoices) + " (got " + Quoted(s.network) + ")");
  }
  if (Status st = range("concurrency", s.concurrency, 0, kConcurrencyMax); !st.ok()) return st;

  // Policy: each number belongs to one kind and keeps its default under the others, so a
  // spec has one spelling and round-trips through SpecToJson.
  const Policy& p = s.policy;
  const Policy& dp = Defaults().policy;
  auto policy_error = [&](std::string problem) {
    return FieldError(source, s.name, "policy", problem);
  };
  if (p.kind != PolicyKind::kCold && p.kind != PolicyKind::kWarm && p.kind != PolicyKind::kPool) {
    return policy_error("has an unknown kind " + std::to_string(static_cast<int>(p.kind)));
  }
  if (p.kind == PolicyKind::kWarm && (p.idle_ttl_s < kIdleTtlMin || p.idle_ttl_s > kIdleTtlMax)) {
    return policy_error("idle_ttl must be an integer 1..3600 (got " + std::to_string(p.idle_ttl_s) +
                        ")");
  }
  if (p.kind != PolicyKind::kWarm && p.idle_ttl_s != dp.idle_ttl_s) {
    return policy_error(std::string("idle_ttl is only used with type \"warm\" (type is \"") +
                        PolicyKindName(p.kind) + "\")");
  }
  if (p.kind == PolicyKind::kPool && (p.pool_size < kPoolMin || p.pool_size > kPoolMax)) {
    return policy_error("pool size must be an integer 1..100 (got " + std::to_string(p.pool_size) +
                        ")");
  }
  if (p.kind != PolicyKind::kPool && p.pool_size != dp.pool_size) {
    return policy_error(std::string("size is only used with type \"pool\" (type is \"") +
                        PolicyKindName(p.kind) + "\")");
  }
  if (p.kind == PolicyKind::kPool && s.concurrency > 0 && p.pool_size > s.concurrency) {
    return policy_error("pool size " + std::to_string(p.pool_size) +
                        " is above the function's concurrency limit " +
                        std::to_string(s.concurrency));
  }
  if (Status st = range("queue_size", s.queue_size, 0, kQueueSizeMax); !st.ok()) return st;
  if (Status st = range("queue_timeout", s.queue_timeout_s, kQueueTimeoutMin, kQueueTimeoutMax);
      !st.ok()) {
    return st;
  }

  const SecuritySettings& sec = s.security;
  if (Status st = range("security.tmp_size_mb", sec.tmp_size_mb, kTmpSizeMin, kTmpSizeMax);
      !st.ok()) {
    return st;
  }
  if (!sec.read_only_root && sec.tmp_size_mb != Defaults().security.tmp_size_mb) {
    return FieldError(source, s.name, "security.tmp_size_mb",
                      "is only used with read_only_root true (the /tmp tmpfs comes with the "
                      "read-only root)");
  }
  if (std::string p2 = CapAddProblem(sec.cap_add); !p2.empty()) {
    return FieldError(source, s.name, "security.cap_add", p2);
  }
  if (sec.pids_limit != 0 && (sec.pids_limit < kPidsMin || sec.pids_limit > kPidsMax)) {
    return FieldError(source, s.name, "security.pids_limit",
                      "must be 0 (unlimited) or an integer 8..65536 (got " +
                          std::to_string(sec.pids_limit) + ")");
  }
  if (Status st = range("security.nofile", sec.nofile, kNofileMin, kNofileMax); !st.ok()) {
    return st;
  }
  if (std::string p2 = UserProblem(sec.user); !p2.empty()) {
    return FieldError(source, s.name, "security.user", p2);
  }
  if (std::string p2 = ForwardProblem(s.forward); !p2.empty()) {
    return FieldError(source, s.name, "forward", p2);
  }
  if (std::string p2 = StoreProblem(s.store); !p2.empty()) {
    return FieldError(source, s.name, "store.prefixes", p2);
  }

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

// Offset of the first NUL that cJSON would produce from `text`, or npos.
size_t FindNul(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\0') return i;
    if (text[i] != '\\') continue;
    if (i + 1 >= text.size()) break;
    if (text[i + 1] == 'u' && i + 5 < text.size()) {
      int value = 0;
      bool ok = true;
      for (size_t k = i + 2; k < i + 6; ++k) {
        int h = hex(text[k]);
        ok = ok && h >= 0;
        value = value * 16 + std::max(h, 0);
      }
      if (ok && value == 0) return i;
    }
    ++i;  // the escaped character, a second backslash included, is not an escape itself
  }
  return std::string_view::npos;
}

// cJSON would end a string at a NUL and silently drop the rest of it; a file holding one
// is refused, pointing at the line.
Status RefuseNul(const std::string& path, std::string_view text) {
  size_t at = FindNul(text);
  if (at == std::string_view::npos) return Status::Ok();
  return InvalidArgument(path + ": line " + std::to_string(LineOf(text, at)) +
                         " holds a NUL character (a \\u0000 escape or a 0 byte); strings of "
                         "a function cannot carry one, so the file is refused rather than "
                         "read with the string cut short");
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
    case ShimMode::kAuto: return "auto";
    case ShimMode::kExec: return "exec";
    case ShimMode::kHttp: return "http";
    case ShimMode::kNative: return "native";
    case ShimMode::kPassthrough: return "passthrough";
  }
  return "auto";
}

Status ParseShimMode(std::string_view text, ShimMode* out) {
  for (ShimMode m : {ShimMode::kAuto, ShimMode::kExec, ShimMode::kHttp, ShimMode::kNative,
                     ShimMode::kPassthrough}) {
    if (text == ShimModeName(m)) {
      *out = m;
      return Status::Ok();
    }
  }
  return InvalidArgument(
      "must be \"auto\", \"exec\", \"http\", \"native\" or \"passthrough\" (got " + Quoted(text) +
      ")");
}

const char* PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kCold: return "cold";
    case PolicyKind::kWarm: return "warm";
    case PolicyKind::kPool: return "pool";
  }
  return "cold";
}

Status ParsePolicyKind(std::string_view text, PolicyKind* out) {
  for (PolicyKind k : {PolicyKind::kCold, PolicyKind::kWarm, PolicyKind::kPool}) {
    if (text == PolicyKindName(k)) {
      *out = k;
      return Status::Ok();
    }
  }
  return InvalidArgument("must be \"cold\", \"warm\" or \"pool\" (got " + Quoted(text) + ")");
}

Status ValidateImageReference(std::string_view image) {
  if (std::string p = ImageProblem(image); !p.empty()) {
    return InvalidArgument("image reference " + Quoted(image) + " is not valid: " + p);
  }
  return Status::Ok();
}

Status ParseForward(std::string_view text, ForwardTarget* out) {
  std::string want = "entry " + Quoted(text) +
                     " must be \"port\" or \"host:port\" with a port 1..65535, e.g. \"6379\" or "
                     "\"127.0.0.1:5432\"";
  int port = 0;
  if (AllDigits(text)) {
    if (!ParsePort(text, &port)) return InvalidArgument(want);
    *out = ForwardTarget{"127.0.0.1", port};
    return Status::Ok();
  }
  std::string_view host, port_text;
  bool bracketed = false;
  if (!SplitHostPort(text, &host, &port_text, &bracketed) || port_text.empty() ||
      !ParsePort(port_text, &port)) {
    return InvalidArgument(want);
  }
  if (bracketed ? !ValidIpv6(host) : !ValidHostName(host)) {
    return InvalidArgument("entry " + Quoted(text) + ": " + Quoted(host) +
                           " is not an IPv4 address, a host name or a bracketed IPv6 address");
  }
  *out = ForwardTarget{std::string(host), port};
  return Status::Ok();
}

bool ContainsEscapedNul(std::string_view json_text) {
  return FindNul(json_text) != std::string_view::npos;
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

namespace {

// "policy": "cold" | "warm" | {"type": "cold"|"warm"|"pool", "idle_ttl": s, "size": n}.
// Range and cross-field checks are ValidateSpec's; this reads the shape.
bool ReadPolicy(const cJSON* item, Policy* out, std::string* problem) {
  Policy p;
  if (cJSON_IsString(item) && item->valuestring != nullptr) {
    std::string_view text = item->valuestring;
    if (text == "pool") {
      *problem =
          "\"pool\" needs a size: write {\"type\": \"pool\", \"size\": N} with N 1..100 (the "
          "environments kept started)";
      return false;
    }
    if (Status st = ParsePolicyKind(text, &p.kind); !st.ok()) {
      *problem = st.message();
      return false;
    }
    *out = p;
    return true;
  }
  if (!cJSON_IsObject(item)) {
    *problem =
        "must be \"cold\", \"warm\" or an object such as {\"type\": \"pool\", "
        "\"size\": 2} (got " +
        Shown(item) + ")";
    return false;
  }
  bool has_type = false, has_ttl = false, has_size = false;
  std::set<std::string_view> seen;
  const cJSON* member = nullptr;
  cJSON_ArrayForEach(member, item) {
    std::string_view key = member->string != nullptr ? member->string : "";
    int64_t n = 0;
    std::string sub;
    if (!seen.insert(key).second) {
      *problem = "key " + Quoted(key) + " appears twice";
      return false;
    }
    if (key == "type") {
      std::string text;
      if (!ReadString(member, &text, &sub)) {
        *problem = "type " + sub;
        return false;
      }
      if (Status st = ParsePolicyKind(text, &p.kind); !st.ok()) {
        *problem = "type " + st.message();
        return false;
      }
      has_type = true;
    } else if (key == "idle_ttl") {
      if (!ReadInt(member, kIdleTtlMin, kIdleTtlMax, &n, &sub)) {
        *problem = "idle_ttl " + sub;
        return false;
      }
      p.idle_ttl_s = static_cast<int>(n);
      has_ttl = true;
    } else if (key == "size") {
      if (!ReadInt(member, kPoolMin, kPoolMax, &n, &sub)) {
        *problem = "pool size " + sub;
        return false;
      }
      p.pool_size = static_cast<int>(n);
      has_size = true;
    } else {
      *problem = "unknown key " + Quoted(key) + " (known: type, idle_ttl, size)";
      return false;
    }
  }
  if (!has_type) {
    *problem = "needs a \"type\": \"cold\", \"warm\" or \"pool\"";
    return false;
  }
  if (has_ttl && p.kind != PolicyKind::kWarm) {
    *problem = std::string("idle_ttl is only used with type \"warm\" (type is \"") +
               PolicyKindName(p.kind) + "\")";
    return false;
  }
  if (has_size && p.kind != PolicyKind::kPool) {
    *problem = std::string("size is only used with type \"pool\" (type is \"") +
               PolicyKindName(p.kind) + "\")";
    return false;
  }
  if (p.kind == PolicyKind::kPool && !has_size) {
    *problem = "type \"pool\" needs a \"size\" 1..100 (the environments kept started)";
    return false;
  }
  *out = p;
  return true;
}

// "security": {...}; errors name the member, e.g. field "security.pids_limit".
Status ReadSecurity(const cJSON* item, std::string_view source, std::string_view name,
                    SecuritySettings* out) {
  if (!cJSON_IsObject(item)) {
    return FieldError(source, name, "security", "must be an object (got " + Shown(item) + ")");
  }
  SecuritySettings sec;
  bool has_tmp = false;
  std::set<std::string_view> seen;
  const cJSON* member = nullptr;
  cJSON_ArrayForEach(member, item) {
    std::string_view key = member->string != nullptr ? member->string : "";
    std::string field = "security." + std::string(key);
    std::string problem;
    int64_t n = 0;
    bool ok = true;
    if (!seen.insert(key).second) {
      problem = "appears twice";
      ok = false;
    } else if (key == "read_only_root") {
      ok = ReadBool(member, &sec.read_only_root, &problem);
    } else if (key == "tmp_size_mb") {
      ok = ReadInt(member, kTmpSizeMin, kTmpSizeMax, &n, &problem);
      sec.tmp_size_mb = static_cast<int>(n);
      has_tmp = true;
    } else if (key == "drop_capabilities") {
      ok = ReadBool(member, &sec.drop_capabilities, &problem);
    } else if (key == "cap_add") {
      ok = ReadStringList(member, &sec.cap_add, &problem);
    } else if (key == "no_new_privileges") {
      ok = ReadBool(member, &sec.no_new_privileges, &problem);
    } else if (key == "pids_limit") {
      ok = ReadInt(member, 0, kPidsMax, &n, &problem);
      if (ok && n != 0 && n < kPidsMin) ok = false;
      if (!ok) problem = "must be 0 (unlimited) or an integer 8..65536 (got " + Shown(member) + ")";
      sec.pids_limit = static_cast<int>(n);
    } else if (key == "nofile") {
      ok = ReadInt(member, kNofileMin, kNofileMax, &n, &problem);
      sec.nofile = static_cast<int>(n);
    } else if (key == "user") {
      ok = ReadString(member, &sec.user, &problem);
    } else {
      field = "security";
      problem = "unknown key " + Quoted(key) +
                " (known: read_only_root, tmp_size_mb, drop_capabilities, cap_add, "
                "no_new_privileges, pids_limit, nofile, user)";
      ok = false;
    }
    if (!ok) return FieldError(source, name, field, problem);
  }
  if (has_tmp && !sec.read_only_root) {
    return FieldError(source, name, "security.tmp_size_mb",
                      "is only used with read_only_root true (the /tmp tmpfs comes with the "
                      "read-only root)");
  }
  *out = std::move(sec);
  return Status::Ok();
}

// The "store" object: {"prefixes": ["order:*", ...]}. Errors name the member
// (field "store.prefixes").
Status ReadStore(const cJSON* obj, std::string_view source, std::string_view name,
                 StoreSettings* out) {
  if (!cJSON_IsObject(obj)) {
    return FieldError(
        source, name, "store",
        "must be an object such as {\"prefixes\": [\"order:*\"]} (got " + Shown(obj) + ")");
  }
  StoreSettings store;
  bool has_prefixes = false;
  std::set<std::string_view> seen;
  const cJSON* member = nullptr;
  cJSON_ArrayForEach(member, obj) {
    std::string_view key = member->string != nullptr ? member->string : "";
    std::string problem;
    if (!seen.insert(key).second) {
      return FieldError(source, name, "store." + std::string(key), "appears twice");
    }
    if (key == "prefixes") {
      if (!ReadStringList(member, &store.prefixes, &problem)) {
        return FieldError(source, name, "store.prefixes", problem);
      }
      has_prefixes = true;
    } else {
      return FieldError(source, name, "store", "unknown key " + Quoted(key) + " (known: prefixes)");
    }
  }
  if (!has_prefixes || store.prefixes.empty()) {
    return FieldError(source, name, "store.prefixes",
                      "must list at least one key pattern such as \"order:*\" (leave out "
                      "\"store\" for a function that does not use it)");
  }
  *out = std::move(store);
  return Status::Ok();
}

}  // namespace

Status ValidateStorePrefix(std::string_view pattern) {
  std::string_view body = pattern;
  if (!body.empty() && body.back() == '*') body.remove_suffix(1);
  if (body.empty()) {
    return InvalidArgument("key pattern " + Quoted(pattern) +
                           " names every key; give a prefix such as \"order:*\"");
  }
  if (pattern.size() > kStorePatternMax) {
    return InvalidArgument("key pattern " + Quoted(pattern) + " is longer than 128 characters");
  }
  for (char c : body) {
    if (!(IsAlnum(c) || c == ':' || c == '_' || c == '.' || c == '-' || c == '/')) {
      return InvalidArgument("key pattern " + Quoted(pattern) +
                             " must be letters, digits and : _ . - / with at most one '*', at "
                             "the end");
    }
  }
  return Status::Ok();
}

Status ParseFunctionSpec(std::string_view name, const cJSON* obj, std::string_view source,
                         FunctionSpec* out) {
  FunctionSpec s;
  s.name = std::string(name);
  // Not fields of the object: kept from the caller's spec (last_modified_ms unless given).
  s.from_manifest = out->from_manifest;
  s.last_modified_ms = out->last_modified_ms;
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
      if (!ImageProblem(s.image).empty()) {
        problem = ImageError(s.image);
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
      if (!ReadPolicy(item, &s.policy, &problem)) return bad();
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
    } else if (field == "queue_size") {
      if (!ReadInt(item, 0, kQueueSizeMax, &n, &problem)) return bad();
      s.queue_size = static_cast<int>(n);
    } else if (field == "queue_timeout") {
      if (!ReadInt(item, kQueueTimeoutMin, kQueueTimeoutMax, &n, &problem)) return bad();
      s.queue_timeout_s = static_cast<int>(n);
    } else if (field == "security") {
      if (Status st = ReadSecurity(item, source, name, &s.security); !st.ok()) return st;
    } else if (field == "forward") {
      if (!ReadStringList(item, &s.forward, &problem)) return bad();
    } else if (field == "store") {
      if (Status st = ReadStore(item, source, name, &s.store); !st.ok()) return st;
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
          "args, working_dir, http_port, http_path, network, concurrency, queue_size, "
          "queue_timeout, security, forward, store, description, role, comment)";
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
  if (s.policy.kind == PolicyKind::kWarm && s.policy.idle_ttl_s == Defaults().policy.idle_ttl_s) {
    cJSON_AddStringToObject(o, "policy", "warm");
  } else if (s.policy != Defaults().policy) {
    cJSON* policy = cJSON_AddObjectToObject(o, "policy");
    cJSON_AddStringToObject(policy, "type", PolicyKindName(s.policy.kind));
    if (s.policy.idle_ttl_s != Defaults().policy.idle_ttl_s) {
      cJSON_AddNumberToObject(policy, "idle_ttl", s.policy.idle_ttl_s);
    }
    if (s.policy.pool_size != Defaults().policy.pool_size) {
      cJSON_AddNumberToObject(policy, "size", s.policy.pool_size);
    }
  }
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
  // Always written: the default changed once (host, then isolated), see LoadState.
  cJSON_AddStringToObject(o, "network", s.network.c_str());
  if (s.concurrency != 0) cJSON_AddNumberToObject(o, "concurrency", s.concurrency);
  const FunctionSpec& d = Defaults();
  if (s.queue_size != d.queue_size) cJSON_AddNumberToObject(o, "queue_size", s.queue_size);
  if (s.queue_timeout_s != d.queue_timeout_s) {
    cJSON_AddNumberToObject(o, "queue_timeout", s.queue_timeout_s);
  }
  if (s.security != d.security) {
    const SecuritySettings& sec = s.security;
    const SecuritySettings& ds = d.security;
    cJSON* j = cJSON_AddObjectToObject(o, "security");
    if (sec.read_only_root != ds.read_only_root) {
      cJSON_AddBoolToObject(j, "read_only_root", sec.read_only_root);
    }
    if (sec.tmp_size_mb != ds.tmp_size_mb)
      cJSON_AddNumberToObject(j, "tmp_size_mb", sec.tmp_size_mb);
    if (sec.drop_capabilities != ds.drop_capabilities) {
      cJSON_AddBoolToObject(j, "drop_capabilities", sec.drop_capabilities);
    }
    if (!sec.cap_add.empty()) json::AddStringArray(j, "cap_add", sec.cap_add);
    if (sec.no_new_privileges != ds.no_new_privileges) {
      cJSON_AddBoolToObject(j, "no_new_privileges", sec.no_new_privileges);
    }
    if (sec.pids_limit != ds.pids_limit) cJSON_AddNumberToObject(j, "pids_limit", sec.pids_limit);
    if (sec.nofile != ds.nofile) cJSON_AddNumberToObject(j, "nofile", sec.nofile);
    if (!sec.user.empty()) cJSON_AddStringToObject(j, "user", sec.user.c_str());
  }
  if (!s.forward.empty()) json::AddStringArray(o, "forward", s.forward);
  if (!s.store.prefixes.empty()) {
    json::AddStringArray(cJSON_AddObjectToObject(o, "store"), "prefixes", s.store.prefixes);
  }
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
    if (Status s = RefuseNul(path, text); !s.ok()) return s;
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
      if (Status s = RefuseNul(path, text); !s.ok()) return s;
      json::Json root;
      if (Status s = ParseJsonFile(path, text, "registry state", &root); !s.ok()) {
        return InvalidArgument(s.message() +
                               "; it holds the functions created through the API, so it is not "
                               "ignored: repair it or delete it to start with none");
      }
      const cJSON* item = nullptr;
      int version = 1;
      cJSON_ArrayForEach(item, root.get()) {
        std::string_view key = item->string != nullptr ? item->string : "";
        if (key == "version") {
          if (!cJSON_IsNumber(item) || (item->valuedouble != 1 && item->valuedouble != 2)) {
            return InvalidArgument(path + ": unsupported registry state version " + Shown(item) +
                                   " (this build reads versions 1 and 2)");
          }
          version = static_cast<int>(item->valuedouble);
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
      const cJSON* functions = cJSON_GetObjectItemCaseSensitive(root.get(), "functions");
      for (auto& [name, spec] : r->created_) {
        auto copy = std::make_shared<FunctionSpec>(*spec);
        copy->from_manifest = false;
        // Version 1 was written while functions that named no network shared the host's,
        // and left the field out for them: they keep the host network.
        if (version == 1 &&
            !cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(functions, name.c_str()),
                                 "network")) {
          copy->network = "host";
        }
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
  if (ImageProblem(spec.image).empty()) spec.image = NormalizeImage(spec.image);
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
  cJSON_AddNumberToObject(root.get(), "version", kStateVersion);
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
  if (!ImageProblem(s.image).empty())
    return InvalidArgument("Code.ImageUri " + ImageError(s.image));
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
  if (size_t bytes = EnvironmentBytes(s.environment); bytes > kEnvironmentMaxBytes) {
    return InvalidArgument("Environment.Variables: " + EnvironmentSizeProblem(bytes) +
                           " (the EPHEMERA_* settings are not counted)");
  }

  // The EPHEMERA_* settings. Every error names the variable.
  auto where = [&](const std::string& key) {
    return key == "EPHEMERA_MODE" &&
                   cJSON_GetObjectItemCaseSensitive(req, "EphemeraMode") != nullptr
               ? std::string("EphemeraMode")
               : "Environment.Variables." + key;
  };
  auto int_setting = [&](const std::string& key, const std::string& text, int64_t lo, int64_t hi,
                         int* dst) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    bool digits =
        !text.empty() && std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(), IsDigit);
    if (!digits || text == "-" || *end != '\0' || errno != 0 || v < lo || v > hi) {
      return InvalidArgument(where(key) + " must be an integer " + std::to_string(lo) + ".." +
                             std::to_string(hi) + " (got " + Quoted(text) + ")");
    }
    *dst = static_cast<int>(v);
    return Status::Ok();
  };
  auto bool_setting = [&](const std::string& key, const std::string& text, bool* dst) {
    if (text != "true" && text != "false") {
      return InvalidArgument(where(key) + " must be \"true\" or \"false\" (got " + Quoted(text) +
                             ")");
    }
    *dst = text == "true";
    return Status::Ok();
  };
  // "a,b,c" -> {"a", "b", "c"}; "" -> {}. Empty items are errors (",," or a trailing ',').
  auto list_setting = [&](const std::string& key, const std::string& text,
                          std::vector<std::string>* dst) {
    std::vector<std::string> items;
    if (!text.empty()) {
      size_t start = 0;
      for (;;) {
        size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
        if (item.empty()) {
          return InvalidArgument(where(key) + " has an empty item (got " + Quoted(text) +
                                 "; write a comma-separated list without spaces)");
        }
        items.push_back(std::move(item));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    *dst = std::move(items);
    return Status::Ok();
  };
  SecuritySettings& sec = s.security;
  for (const auto& [key, value] : settings) {
    Status st;
    if (key == "EPHEMERA_MODE") {
      st = ParseShimMode(value, &s.mode);
      if (!st.ok()) st = InvalidArgument(where(key) + " " + st.message());
    } else if (key == "EPHEMERA_POLICY") {
      st = ParsePolicyKind(value, &s.policy.kind);
      if (!st.ok()) st = InvalidArgument(where(key) + " " + st.message());
    } else if (key == "EPHEMERA_IDLE_TTL") {
      st = int_setting(key, value, kIdleTtlMin, kIdleTtlMax, &s.policy.idle_ttl_s);
    } else if (key == "EPHEMERA_POOL_SIZE") {
      st = int_setting(key, value, kPoolMin, kPoolMax, &s.policy.pool_size);
    } else if (key == "EPHEMERA_QUEUE_SIZE") {
      st = int_setting(key, value, 0, kQueueSizeMax, &s.queue_size);
    } else if (key == "EPHEMERA_QUEUE_TIMEOUT") {
      st = int_setting(key, value, kQueueTimeoutMin, kQueueTimeoutMax, &s.queue_timeout_s);
    } else if (key == "EPHEMERA_NETWORK") {
      if (!ValidNetwork(value)) {
        st = InvalidArgument(where(key) + " " + kNetworkChoices + " (got " + Quoted(value) + ")");
      }
      s.network = value;
    } else if (key == "EPHEMERA_HTTP_PORT") {
      st = int_setting(key, value, 0, 65535, &s.http_port);
    } else if (key == "EPHEMERA_HTTP_PATH") {
      if (std::string p = HttpPathProblem(value); !p.empty()) {
        st = InvalidArgument(where(key) + " " + p);
      }
      s.http_path = value;
    } else if (key == "EPHEMERA_CONCURRENCY") {
      st = int_setting(key, value, 0, kConcurrencyMax, &s.concurrency);
    } else if (key == "EPHEMERA_READ_ONLY_ROOT") {
      st = bool_setting(key, value, &sec.read_only_root);
    } else if (key == "EPHEMERA_TMP_SIZE_MB") {
      st = int_setting(key, value, kTmpSizeMin, kTmpSizeMax, &sec.tmp_size_mb);
    } else if (key == "EPHEMERA_DROP_CAPABILITIES") {
      st = bool_setting(key, value, &sec.drop_capabilities);
    } else if (key == "EPHEMERA_CAP_ADD") {
      st = list_setting(key, value, &sec.cap_add);
      if (std::string p = CapAddProblem(sec.cap_add); st.ok() && !p.empty()) {
        st = InvalidArgument(where(key) + ": " + p);
      }
    } else if (key == "EPHEMERA_NO_NEW_PRIVILEGES") {
      st = bool_setting(key, value, &sec.no_new_privileges);
    } else if (key == "EPHEMERA_PIDS_LIMIT") {
      st = int_setting(key, value, 0, kPidsMax, &sec.pids_limit);
      if (st.ok() && sec.pids_limit != 0 && sec.pids_limit < kPidsMin) {
        st = InvalidArgument(where(key) + " must be 0 (unlimited) or an integer 8..65536 (got " +
                             Quoted(value) + ")");
      }
    } else if (key == "EPHEMERA_NOFILE") {
      st = int_setting(key, value, kNofileMin, kNofileMax, &sec.nofile);
    } else if (key == "EPHEMERA_USER") {
      if (std::string p = UserProblem(value); !p.empty()) {
        st = InvalidArgument(where(key) + " " + p);
      }
      sec.user = value;
    } else if (key == "EPHEMERA_FORWARD") {
      st = list_setting(key, value, &s.forward);
      if (std::string p = ForwardProblem(s.forward); st.ok() && !p.empty()) {
        st = InvalidArgument(where(key) + ": " + p);
      }
    } else if (key == "EPHEMERA_STORE_PREFIXES") {
      st = list_setting(key, value, &s.store.prefixes);
      if (std::string p = StoreProblem(s.store); st.ok() && !p.empty()) {
        st = InvalidArgument(where(key) + ": " + p);
      }
    } else {
      st = InvalidArgument(where(key) +
                           " is not an ephemera setting (known: EPHEMERA_MODE, EPHEMERA_POLICY, "
                           "EPHEMERA_IDLE_TTL, EPHEMERA_POOL_SIZE, EPHEMERA_QUEUE_SIZE, "
                           "EPHEMERA_QUEUE_TIMEOUT, EPHEMERA_NETWORK, EPHEMERA_HTTP_PORT, "
                           "EPHEMERA_HTTP_PATH, EPHEMERA_CONCURRENCY, EPHEMERA_READ_ONLY_ROOT, "
                           "EPHEMERA_TMP_SIZE_MB, EPHEMERA_DROP_CAPABILITIES, EPHEMERA_CAP_ADD, "
                           "EPHEMERA_NO_NEW_PRIVILEGES, EPHEMERA_PIDS_LIMIT, EPHEMERA_NOFILE, "
                           "EPHEMERA_USER, EPHEMERA_FORWARD, EPHEMERA_STORE_PREFIXES)");
    }
    if (!st.ok()) return st;
  }
  // Settings that depend on one another, named as the user wrote them.
  auto has = [&](const char* key) { return settings.count(key) != 0; };
  if (s.mode != ShimMode::kHttp && (s.http_port != 8080 || s.http_path != "/")) {
    return InvalidArgument(std::string("Environment.Variables.") +
                           (s.http_port != 8080 ? "EPHEMERA_HTTP_PORT" : "EPHEMERA_HTTP_PATH") +
                           " is only used with EPHEMERA_MODE http");
  }
  if (s.policy.kind == PolicyKind::kPool && !has("EPHEMERA_POOL_SIZE")) {
    return InvalidArgument(
        "Environment.Variables.EPHEMERA_POLICY pool needs Environment.Variables."
        "EPHEMERA_POOL_SIZE (1..100, the environments kept started)");
  }
  if (s.policy.kind != PolicyKind::kPool && has("EPHEMERA_POOL_SIZE")) {
    return InvalidArgument(
        "Environment.Variables.EPHEMERA_POOL_SIZE is only used with "
        "Environment.Variables.EPHEMERA_POLICY pool");
  }
  if (s.policy.kind != PolicyKind::kWarm && has("EPHEMERA_IDLE_TTL")) {
    return InvalidArgument(
        "Environment.Variables.EPHEMERA_IDLE_TTL is only used with "
        "Environment.Variables.EPHEMERA_POLICY warm");
  }
  if (s.policy.kind == PolicyKind::kPool && s.concurrency > 0 &&
      s.policy.pool_size > s.concurrency) {
    return InvalidArgument("Environment.Variables.EPHEMERA_POOL_SIZE " +
                           std::to_string(s.policy.pool_size) +
                           " is above the function's concurrency limit "
                           "(Environment.Variables.EPHEMERA_CONCURRENCY " +
                           std::to_string(s.concurrency) + ")");
  }
  if (!sec.read_only_root && has("EPHEMERA_TMP_SIZE_MB")) {
    return InvalidArgument(
        "Environment.Variables.EPHEMERA_TMP_SIZE_MB is only used with "
        "Environment.Variables.EPHEMERA_READ_ONLY_ROOT true (the /tmp tmpfs comes with the "
        "read-only root)");
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
  const FunctionSpec& d = Defaults();
  auto add = [&](const char* key, const std::string& value) {
    cJSON_AddStringToObject(vars, key, value.c_str());
  };
  auto add_int = [&](const char* key, int value, int default_value) {
    if (value != default_value) add(key, std::to_string(value));
  };
  auto add_bool = [&](const char* key, bool value, bool default_value) {
    if (value != default_value) add(key, value ? "true" : "false");
  };
  auto add_list = [&](const char* key, const std::vector<std::string>& items) {
    if (items.empty()) return;
    std::string joined;
    for (const std::string& item : items) joined += (joined.empty() ? "" : ",") + item;
    add(key, joined);
  };
  if (s.policy.kind != d.policy.kind) add("EPHEMERA_POLICY", PolicyKindName(s.policy.kind));
  add_int("EPHEMERA_IDLE_TTL", s.policy.idle_ttl_s, d.policy.idle_ttl_s);
  add_int("EPHEMERA_POOL_SIZE", s.policy.pool_size, d.policy.pool_size);
  add_int("EPHEMERA_QUEUE_SIZE", s.queue_size, d.queue_size);
  add_int("EPHEMERA_QUEUE_TIMEOUT", s.queue_timeout_s, d.queue_timeout_s);
  if (s.network != d.network) add("EPHEMERA_NETWORK", s.network);
  add_int("EPHEMERA_HTTP_PORT", s.http_port, d.http_port);
  if (s.http_path != d.http_path) add("EPHEMERA_HTTP_PATH", s.http_path);
  add_int("EPHEMERA_CONCURRENCY", s.concurrency, d.concurrency);
  const SecuritySettings& sec = s.security;
  add_bool("EPHEMERA_READ_ONLY_ROOT", sec.read_only_root, d.security.read_only_root);
  add_int("EPHEMERA_TMP_SIZE_MB", sec.tmp_size_mb, d.security.tmp_size_mb);
  add_bool("EPHEMERA_DROP_CAPABILITIES", sec.drop_capabilities, d.security.drop_capabilities);
  add_list("EPHEMERA_CAP_ADD", sec.cap_add);
  add_bool("EPHEMERA_NO_NEW_PRIVILEGES", sec.no_new_privileges, d.security.no_new_privileges);
  add_int("EPHEMERA_PIDS_LIMIT", sec.pids_limit, d.security.pids_limit);
  add_int("EPHEMERA_NOFILE", sec.nofile, d.security.nofile);
  if (!sec.user.empty()) add("EPHEMERA_USER", sec.user);
  add_list("EPHEMERA_FORWARD", s.forward);
  add_list("EPHEMERA_STORE_PREFIXES", s.store.prefixes);
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
  // docs/protocols.md section 2, anchored. Groups: 7 = name, 9 = qualifier.
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
  // A plain name, the usual case, needs no pattern: every other form has a ':'.
  if (text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
      std::string::npos) {
    if (text.size() > kNameMax) {
      return InvalidArgument("function name " + Quoted(text) + " is " +
                             std::to_string(text.size()) + " characters long; the limit is 64");
    }
    *name = std::move(text);
    qualifier->clear();
    return Status::Ok();
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
