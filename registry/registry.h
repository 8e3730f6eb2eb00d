// registry/registry.h: the function registry (service locator) of ephemera.
//
// What it does: knows every function the daemon can run. Functions come from two places:
//   - the manifest (registry/functions.json by default), written by hand, read-only here;
//   - the state file, where functions created through the Lambda control-plane API
//     (CreateFunction) persist, together with the names of manifest functions that were
//     deleted through the API ("tombstones", so a deleted manifest function stays deleted
//     across restarts until the state file is removed or the function is created again).
// The shapes of both files are documented in registry/README.md. Unknown fields are errors,
// so typos are caught; every error names the file, the function and the field.
//
// It also maps the Lambda control-plane JSON (docs/protocols.md section 2) onto FunctionSpec and
// back (SpecFromCreateFunction, FunctionConfiguration) and parses Invoke's FunctionName
// (ParseFunctionRef), so the HTTP handlers stay thin.
//
// Thread: a Registry belongs to one thread (the loop thread); it has no locks. The free
//   functions are pure and usable from any thread.
// Blocking: Open reads two small files; Create and Remove write the state file
//   synchronously (write tmp, fsync, rename, fsync dir). These are rare control-plane calls
//   on a file of a few KB, so a millisecond of blocking was judged cheaper than an async
//   write path; revisit if a measurement says otherwise.
// Ownership: Find and List hand out shared_ptr<const FunctionSpec>. A spec is immutable once
//   registered; an in-flight invocation may keep its spec alive after DeleteFunction.
// Depends on: runtime/core (Status), runtime/json (cJSON).
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/json/json.h"

namespace ephemera::registry {

// How the daemon starts a function's container (docs/architecture.md "Shim modes").
// kNative and kPassthrough inject no shim: the image talks to the Runtime API itself.
// kAuto (the default) leaves the choice to the daemon, which decides from the image.
enum class ShimMode { kAuto, kExec, kHttp, kNative, kPassthrough };

// Execution policy: what happens to an environment after an invocation.
//   cold: a fresh container per invocation, removed afterwards;
//   warm: the environment is kept for reuse until it has been idle for `idle_ttl_s`;
//   pool: `pool_size` environments are kept started ahead of demand.
enum class PolicyKind { kCold, kWarm, kPool };
struct Policy {
  PolicyKind kind = PolicyKind::kCold;
  int idle_ttl_s = 60;  // warm only: 1..3600 (stays 60 for cold and pool)
  int pool_size = 0;    // pool only: 1..100, and <= concurrency when concurrency > 0 (else 0)
  bool operator==(const Policy&) const = default;
};

// Text forms used in the manifest, the state file and EPHEMERA_MODE / EPHEMERA_POLICY.
const char* ShimModeName(ShimMode mode);  // "auto", "exec", "http", "native", "passthrough"
Status ParseShimMode(std::string_view text, ShimMode* out);
const char* PolicyKindName(PolicyKind kind);  // "cold", "warm", "pool"
Status ParsePolicyKind(std::string_view text, PolicyKind* out);

// Container hardening, on by default; a spec opts out field by field (registry/README.md
// says when one would).
struct SecuritySettings {
  bool read_only_root = true;        // ReadonlyRootfs, with a tmpfs at /tmp
  int tmp_size_mb = 512;             // 1..10240, the /tmp tmpfs size (Lambda gives 512 MB);
                                     // only with read_only_root (else it must stay 512)
  bool drop_capabilities = true;     // CapDrop ALL
  std::vector<std::string> cap_add;  // added back, e.g. "NET_BIND_SERVICE": [A-Z_]+, a Linux
                                     // capability (an optional "CAP_" prefix is kept as
                                     // written), not "ALL", no duplicates
  bool no_new_privileges = true;
  int pids_limit = 256;  // 0 = unlimited, else 8..65536
  int nofile = 1024;     // open-files limit (soft = hard), 64..1048576
  // "" = a non-root default chosen by the daemon where the image allows; else "root", or
  // "user[:group]" where each part is a number (uid/gid) or a name [a-zA-Z_][a-zA-Z0-9_.-]*
  // of at most 32 characters.
  std::string user = "";
  bool operator==(const SecuritySettings&) const = default;
};

// The data store: the Redis keys a function may use (registry/README.md "store"). A
// function with prefixes gets its own Redis ACL user, limited to them, and its address and
// credentials in EPHEMERA_STORE_URL (runtime/store/store_users.h). No prefixes = no store.
struct StoreSettings {
  // Key patterns: 1..128 characters of [A-Za-z0-9:_.-/], optionally ending in one '*'
  // (a prefix); no other glob characters, "*" alone refused (that is every key), at most
  // 32 entries, no duplicates. Kept as written.
  std::vector<std::string> prefixes;
  bool operator==(const StoreSettings&) const = default;
};
// Checks one store key pattern; InvalidArgument says what is wrong.
Status ValidateStorePrefix(std::string_view pattern);

inline constexpr char kDefaultRole[] = "arn:aws:iam::000000000000:role/ephemera";
inline constexpr char kArnPrefix[] = "arn:aws:lambda:us-east-1:000000000000:function:";
// The network of a function that names none: a namespace of its own (docs/architecture.md
// "Isolation and hardening"); "host" is the explicit opt-out. State files of version 1,
// written while "host" was the default, keep "host" for the functions that named none.
inline constexpr char kDefaultNetwork[] = "isolated";
inline constexpr int kStateVersion = 2;
// Lambda's limit on a function's environment: keys plus values, all variables together.
inline constexpr size_t kEnvironmentMaxBytes = 4096;

struct FunctionSpec {
  std::string name;  // 1..64 chars of [a-zA-Z0-9-_]
  // Required; Docker's reference grammar ([host[:port]/]path[:tag][@sha256:<64 hex>], see
  // ValidateImageReference), normalised to carry a tag (":latest" added if there is neither
  // a tag nor a digest); at most 255 characters as stored.
  std::string image;
  int timeout_s = 3;    // 1..900
  int memory_mb = 128;  // 128..10240
  // Keys match [a-zA-Z][a-zA-Z0-9_]*, are not AWS-reserved (IsReservedEnvName) and do not
  // start with EPHEMERA_ (reserved for ephemera's own settings). Keys plus values take at
  // most kEnvironmentMaxBytes in total. No string of a spec may contain a NUL character.
  std::map<std::string, std::string> environment;
  ShimMode mode = ShimMode::kAuto;
  Policy policy;
  // Optional. If non-empty it is the whole argv: it replaces the image's ENTRYPOINT and CMD.
  std::vector<std::string> command;
  // Optional, only meaningful when `command` is empty: replaces the image's CMD, i.e. the
  // arguments given to the image's ENTRYPOINT (Lambda's ImageConfig.Command alone).
  std::vector<std::string> args;
  std::string working_dir;                // optional; absolute path
  int http_port = 8080;                   // http mode: the port the service listens on, 0..65535
  std::string http_path = "/";            // http mode: where non-API-Gateway events are POSTed
  std::string network = kDefaultNetwork;  // "isolated" | "host" | "bridge" | "none"
  int concurrency = 0;                    // max concurrent invocations, 0 = unlimited; 0..10000
  // Invocations that may wait for capacity beyond `concurrency`, 0..10000; 0 = refuse at
  // once with 429.
  int queue_size = 100;
  int queue_timeout_s = 10;  // 1..900: how long one may wait in that queue before a 429
  SecuritySettings security;
  // Host services the function may reach: "port" (127.0.0.1 implied) or "host:port"
  // (host an IPv4 address, a DNS name or a bracketed IPv6 address), e.g. "6379",
  // "127.0.0.1:5432". Kept as written; no two entries name the same host and port.
  std::vector<std::string> forward;
  StoreSettings store;              // the Redis keys it may use; none by default
  std::string description;          // up to 256 chars
  std::string role = kDefaultRole;  // echoed in FunctionConfiguration; never used
  int64_t last_modified_ms = 0;     // epoch ms; the manifest's mtime for manifest functions
  bool from_manifest = true;        // false for functions created through the API

  bool operator==(const FunctionSpec&) const = default;
};

// Checks `image` against Docker's reference grammar (what the engine would accept):
//   [host[:port]/]component[/component...][:tag][@sha256:<64 lowercase hex>]
// where a component is [a-z0-9]+ joined by '.', '_', '__' or dashes, the tag is
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, and the first part is a host only if it contains '.'
// or ':' or is "localhost" (or has upper case, as Docker decides). At most 255 characters
// including the ":latest" that normalisation adds. InvalidArgument says what is wrong.
Status ValidateImageReference(std::string_view image);

// One `forward` entry: "6379" -> {"127.0.0.1", 6379}; "db.local:5432" -> {"db.local", 5432};
// "[::1]:53" -> {"::1", 53}. Ports are 1..65535. InvalidArgument says what is wrong.
struct ForwardTarget {
  std::string host;
  int port = 0;
  bool operator==(const ForwardTarget&) const = default;
};
Status ParseForward(std::string_view text, ForwardTarget* out);

// True if `json_text` holds a NUL character that cJSON would turn into the end of a string,
// silently truncating it: a \u0000 escape (its hex digits read in either case) or a raw 0
// byte. An escaped backslash followed by "u0000" (the seven characters \\u0000 in the JSON
// text) is not a NUL. Registry::Open refuses such files; the API layer must call this on every
// CreateFunction body before parsing it, and answer 400 InvalidParameterValueException.
bool ContainsEscapedNul(std::string_view json_text);

// Checks a function name against AWS's pattern: 1..64 characters of [a-zA-Z0-9-_].
// The message says what is wrong (empty, too long, which character).
Status ValidateName(std::string_view name);

// True for the environment names the platform sets itself (docs/protocols.md section 1,
// reserved names:
// AWS_LAMBDA_RUNTIME_API, _HANDLER, AWS_REGION, AWS_ACCESS_KEY_ID, LAMBDA_TASK_ROOT, ...).
bool IsReservedEnvName(std::string_view key);

// Parses one function object of the manifest / state file shape (README.md) into `out`.
// `name` is the key the object was found under; `source` names the file for messages.
// Errors are InvalidArgument and read like:
//   registry/functions.json: function "echo": field "timeout": must be an integer 1..900 (got
//   "abc")
// `*out` is written only on success. `out->from_manifest` and `out->last_modified_ms` keep
// the values the caller put there (no object field sets from_manifest; last_modified_ms is
// replaced when the object carries "last_modified_ms", as the state file does).
Status ParseFunctionSpec(std::string_view name, const cJSON* obj, std::string_view source,
                         FunctionSpec* out);

// The inverse of ParseFunctionSpec: the object the state file stores for `spec` (defaults
// omitted, "last_modified_ms" included). ParseFunctionSpec(SpecToJson(s)) == s.
json::Json SpecToJson(const FunctionSpec& spec);

class Registry final {
 public:
  // `manifest_path`: the read-only default functions; "" means none. A missing or invalid
  //   manifest is an error (NotFound / InvalidArgument naming the file).
  // `state_path`: where API-created functions and tombstones persist; "" keeps them in
  //   memory only. A missing state file is an empty state; an unreadable or invalid one
  //   (for example truncated) is an error naming the file, never silently dropped.
  //   A leftover "<state_path>.tmp" from an interrupted write is ignored (and overwritten).
  static Status Open(std::string manifest_path, std::string state_path,
                     std::unique_ptr<Registry>* out);

  // Null if there is no such function (names are case-sensitive).
  std::shared_ptr<const FunctionSpec> Find(std::string_view name) const;
  // Every function, sorted by name.
  std::vector<std::shared_ptr<const FunctionSpec>> List() const;

  // Adds a function (from_manifest is forced to false, last_modified_ms set to now if 0),
  // validates it like a manifest entry, and persists. InvalidArgument if invalid, Conflict
  // if the name is taken, Internal if the state file cannot be written (then nothing changed).
  Status Create(FunctionSpec spec);
  // Removes a function and persists. A manifest function leaves a tombstone in the state
  // file. NotFound if there is no such function; Internal if the write fails (nothing changed).
  Status Remove(std::string_view name);

  const std::string& manifest_path() const noexcept { return manifest_path_; }
  const std::string& state_path() const noexcept { return state_path_; }

 private:
  Registry() = default;
  Status Persist(const std::map<std::string, std::shared_ptr<const FunctionSpec>>& created,
                 const std::vector<std::string>& removed) const;

  std::string manifest_path_;
  std::string state_path_;
  std::map<std::string, std::shared_ptr<const FunctionSpec>> manifest_;  // as read
  std::map<std::string, std::shared_ptr<const FunctionSpec>> created_;   // state "functions"
  std::vector<std::string> removed_;                                     // state tombstones
  std::map<std::string, std::shared_ptr<const FunctionSpec>, std::less<>> visible_;
  void Rebuild();  // visible_ = (manifest_ - removed_) overlaid with created_
};

// ---- Lambda control plane (docs/protocols.md section 2) ----

// Maps a CreateFunction request body onto a spec (from_manifest = false). Accepts
// PackageType "Image" (or absent with Code.ImageUri), Code.ImageUri, ImageConfig
// {EntryPoint, Command, WorkingDirectory}, Timeout, MemorySize, Environment.Variables,
// Description, Role (optional here, anything accepted). Other AWS fields are ignored.
// ephemera extensions (so they also work through `aws lambda create-function`) travel in
// Environment.Variables; they are consumed, not passed to the function, and unknown
// EPHEMERA_* names are errors:
//   EPHEMERA_MODE (or a top-level "EphemeraMode"), EPHEMERA_POLICY (cold|warm|pool),
//   EPHEMERA_IDLE_TTL (warm only), EPHEMERA_POOL_SIZE (pool only, and required by it),
//   EPHEMERA_QUEUE_SIZE, EPHEMERA_QUEUE_TIMEOUT, EPHEMERA_NETWORK, EPHEMERA_HTTP_PORT,
//   EPHEMERA_HTTP_PATH, EPHEMERA_CONCURRENCY, EPHEMERA_READ_ONLY_ROOT (true|false),
//   EPHEMERA_TMP_SIZE_MB, EPHEMERA_DROP_CAPABILITIES (true|false), EPHEMERA_CAP_ADD
//   (comma list), EPHEMERA_NO_NEW_PRIVILEGES (true|false), EPHEMERA_PIDS_LIMIT,
//   EPHEMERA_NOFILE, EPHEMERA_USER, EPHEMERA_FORWARD (comma list), EPHEMERA_STORE_PREFIXES
//   (comma list: store.prefixes).
// The function's own variables take at most kEnvironmentMaxBytes (keys plus values).
// The body must have been checked with ContainsEscapedNul first (a cJSON tree cannot show
// a truncated string).
// ImageConfig mapping: EntryPoint [+ Command] -> command; Command alone -> args.
// Errors are InvalidArgument naming the field, e.g.
//   "Code.ImageUri is required for PackageType Image",
//   "PackageType Zip is not supported: ephemera runs container images".
Status SpecFromCreateFunction(const cJSON* request, FunctionSpec* out);

// "arn:aws:lambda:us-east-1:000000000000:function:<name>".
std::string FunctionArn(std::string_view name);
// "2026-11-23T05:40:01.123+0000" (UTC), the LastModified format of the Lambda API.
std::string FormatLastModified(int64_t epoch_ms);

// The FunctionConfiguration object returned by CreateFunction, GetFunctionConfiguration,
// and inside GetFunction / ListFunctions. Non-default ephemera settings are shown as
// EPHEMERA_* entries in Environment.Variables (EPHEMERA_MODE always), mirroring how
// SpecFromCreateFunction accepts them: SpecFromCreateFunction of a request built from this
// configuration gives back the same spec.
json::Json FunctionConfiguration(const FunctionSpec& spec);
// GetFunction's body: {"Configuration":{...},"Code":{"RepositoryType":"ECR","ImageUri":..,
// "ResolvedImageUri":..}}.
json::Json GetFunctionResult(const FunctionSpec& spec);

// Parses Invoke's FunctionName path parameter: a name, "name:qualifier", a full ARN
// "arn:aws:lambda:us-east-1:123456789012:function:name[:qualifier]" or a partial ARN
// "123456789012:function:name[:qualifier]" (docs/protocols.md section 2
// pattern; any region and account).
// `qualifier` is "" when absent. InvalidArgument if `ref` does not match the pattern, is
// longer than 170 characters, or the name part is longer than 64.
Status ParseFunctionRef(std::string_view ref, std::string* name, std::string* qualifier);

}  // namespace ephemera::registry
