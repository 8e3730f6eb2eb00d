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
// It also maps the Lambda control-plane JSON (PROTOCOLS.md §2) onto FunctionSpec and back
// (SpecFromCreateFunction, FunctionConfiguration) and parses Invoke's FunctionName
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

// How the daemon starts a function's container (DESIGN.md "Shim modes").
// kNative and kPassthrough inject no shim: the image talks to the Runtime API itself.
enum class ShimMode { kExec, kHttp, kNative, kPassthrough };
// Execution policy. Only cold exists today; "warm" and "pool" are rejected with a clear
// message until the scheduler supports them.
enum class Policy { kCold };

// Text forms used in the manifest, the state file and EPHEMERA_MODE / EPHEMERA_POLICY.
const char* ShimModeName(ShimMode mode);  // "exec", "http", "native", "passthrough"
Status ParseShimMode(std::string_view text, ShimMode* out);
const char* PolicyName(Policy policy);  // "cold"
Status ParsePolicy(std::string_view text, Policy* out);

inline constexpr char kDefaultRole[] = "arn:aws:iam::000000000000:role/ephemera";
inline constexpr char kArnPrefix[] = "arn:aws:lambda:us-east-1:000000000000:function:";

struct FunctionSpec {
  std::string name;     // 1..64 chars of [a-zA-Z0-9-_]
  std::string image;    // required; normalised to carry a tag (":latest" added if none)
  int timeout_s = 3;    // 1..900
  int memory_mb = 128;  // 128..10240
  // Keys match [a-zA-Z][a-zA-Z0-9_]*, are not AWS-reserved (IsReservedEnvName) and do not
  // start with EPHEMERA_ (reserved for ephemera's own settings).
  std::map<std::string, std::string> environment;
  ShimMode mode = ShimMode::kExec;
  Policy policy = Policy::kCold;
  // Optional. If non-empty it is the whole argv: it replaces the image's ENTRYPOINT and CMD.
  std::vector<std::string> command;
  // Optional, only meaningful when `command` is empty: replaces the image's CMD, i.e. the
  // arguments given to the image's ENTRYPOINT (Lambda's ImageConfig.Command alone).
  std::vector<std::string> args;
  std::string working_dir;          // optional; absolute path
  int http_port = 8080;             // http mode: the port the service listens on, 1..65535
  std::string http_path = "/";      // http mode: where non-API-Gateway events are POSTed
  std::string network = "host";     // "host" | "bridge" | "none"
  int concurrency = 0;              // max concurrent invocations, 0 = unlimited; 0..10000
  std::string description;          // up to 256 chars
  std::string role = kDefaultRole;  // echoed in FunctionConfiguration; never used
  int64_t last_modified_ms = 0;     // epoch ms; the manifest's mtime for manifest functions
  bool from_manifest = true;        // false for functions created through the API

  bool operator==(const FunctionSpec&) const = default;
};

// Checks a function name against AWS's pattern: 1..64 characters of [a-zA-Z0-9-_].
// The message says what is wrong (empty, too long, which character).
Status ValidateName(std::string_view name);

// True for the environment names the platform sets itself (PROTOCOLS.md §1 "Reserved":
// AWS_LAMBDA_RUNTIME_API, _HANDLER, AWS_REGION, AWS_ACCESS_KEY_ID, LAMBDA_TASK_ROOT, ...).
bool IsReservedEnvName(std::string_view key);

// Parses one function object of the manifest / state file shape (README.md) into `out`.
// `name` is the key the object was found under; `source` names the file for messages.
// Errors are InvalidArgument and read like:
//   registry/functions.json: function "echo": field "timeout": must be an integer 1..900 (got
//   "abc")
// `out->from_manifest` and `out->last_modified_ms` are left for the caller unless the object
// carries "last_modified_ms" (the state file does).
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

// ---- Lambda control plane (PROTOCOLS.md §2) ----

// Maps a CreateFunction request body onto a spec (from_manifest = false). Accepts
// PackageType "Image" (or absent with Code.ImageUri), Code.ImageUri, ImageConfig
// {EntryPoint, Command, WorkingDirectory}, Timeout, MemorySize, Environment.Variables,
// Description, Role (optional here, anything accepted). Other AWS fields are ignored.
// ephemera extensions (so they also work through `aws lambda create-function`):
//   Environment.Variables EPHEMERA_MODE, EPHEMERA_POLICY, EPHEMERA_NETWORK,
//   EPHEMERA_HTTP_PORT, EPHEMERA_HTTP_PATH, EPHEMERA_CONCURRENCY (consumed, not passed to
//   the function; unknown EPHEMERA_* names are errors), and a top-level "EphemeraMode".
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
// SpecFromCreateFunction accepts them.
json::Json FunctionConfiguration(const FunctionSpec& spec);
// GetFunction's body: {"Configuration":{...},"Code":{"RepositoryType":"ECR","ImageUri":..,
// "ResolvedImageUri":..}}.
json::Json GetFunctionResult(const FunctionSpec& spec);

// Parses Invoke's FunctionName path parameter: a name, "name:qualifier", a full ARN
// "arn:aws:lambda:us-east-1:123456789012:function:name[:qualifier]" or a partial ARN
// "123456789012:function:name[:qualifier]" (PROTOCOLS.md §2 pattern; any region and account).
// `qualifier` is "" when absent. InvalidArgument if `ref` does not match the pattern, is
// longer than 170 characters, or the name part is longer than 64.
Status ParseFunctionRef(std::string_view ref, std::string* name, std::string* qualifier);

}  // namespace ephemera::registry
