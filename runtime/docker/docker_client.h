// runtime/docker/docker_client.h: Docker Engine API client over a unix socket (or plain
// HTTP over tcp for a remote engine).
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: exactly once, never from inside the call that started them;
//   destroying the client drops pending callbacks without running them.
//   A callback may destroy the client. Cancel() drops the callbacks of one wait, attach or
//   events stream (the exception to "exactly once", asked for by the caller). Invalid
//   arguments (e.g. a relative bind source) are reported through the callback too, on a
//   later loop iteration.
// Depends on: libuv, libcurl (only in docker_client.cc and curl_uv.cc), cJSON, core.
//
// Every call is one HTTP request to API version 1.41 (`/v1.41/...`) through one curl multi
// handle, so keep-alive connections are reused. Engine errors become a Status that names
// the image or container (see EngineError below). Create/start/kill/remove/inspect/list/
// logs time out after 60 s; wait, attach and events have no total timeout (they last as
// long as the container runs, or the engine). Every request is logged at debug level with
// its duration.
//
// The cold path uses the calls in this order (docs/protocols.md section 3):
//   InspectImage (cached) -> CreateContainer -> Attach and/or WaitContainer, waiting for
//   their `on_attached` / `on_waiting` -> StartContainer -> ... -> Kill/RemoveContainer.
// Waiting for on_attached/on_waiting before start matters: a container that exits fast
// would otherwise exit before the engine knows anyone is waiting for it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"

namespace ephemera::docker {

class CurlMulti;

// The parts of `GET /images/{name}/json` Config that decide what a container runs.
struct ImageConfig {
  std::string id;  // "sha256:..."
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user;
};

// One row of GET /containers/json.
struct ContainerSummary {
  std::string id;
  std::string state;
  std::map<std::string, std::string> labels;
};

struct ContainerSpec {
  std::string name;  // optional; sent as ?name= (409 Conflict if taken)
  std::string image;
  std::vector<std::string> entrypoint;  // empty => the image's ENTRYPOINT
  std::vector<std::string> cmd;         // empty => the image's CMD
  std::vector<std::string> env;         // "K=V"
  std::map<std::string, std::string> labels;
  // "/abs/host:/ctr[:ro]". A relative source would silently create a named volume, so
  // CreateContainer refuses it with InvalidArgument.
  std::vector<std::string> binds;
  std::string network_mode = "host";
  int64_t memory_bytes = 0;  // 0 = unlimited; otherwise MemorySwap is set equal (no swap)
  int64_t nano_cpus = 0;     // 0 = unlimited
  std::string working_dir, user;
  // Hardening and plumbing, all off by default (HostConfig fields of the same names).
  bool readonly_rootfs = false;              // ReadonlyRootfs
  bool init = false;                         // Init: tini as PID 1 reaps zombies
  int64_t pids_limit = 0;                    // PidsLimit; 0 = unlimited
  std::map<std::string, std::string> tmpfs;  // Tmpfs: {"/tmp": "rw,size=64m"}
  std::vector<std::string> extra_hosts;      // ExtraHosts: "name:ip" or "name:host-gateway"
  std::vector<std::string> cap_drop;         // CapDrop: {"ALL"} drops every capability
  std::vector<std::string> cap_add;          // CapAdd: capabilities given back
  std::vector<std::string> security_opt;     // SecurityOpt: {"no-new-privileges"}
  int64_t nofile = 0;                        // Ulimits nofile (soft = hard); 0 = the engine's
};

// Stream types of the engine's multiplexed output (non-TTY containers).
enum class StreamType : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2 };

// Incremental decoder of the 8-byte-header framing used by logs and attach:
// [type, 0, 0, 0, size (uint32 big-endian)] then `size` payload bytes. Bytes can be fed
// split anywhere; payload is delivered as soon as it arrives, so one frame may reach
// `on_payload` in several pieces. Input that does not start with a valid header (a TTY
// container) is passed through as stdout from then on.
class DockerStreamDemuxer {
 public:
  using PayloadCallback = std::function<void(StreamType, std::string_view)>;

  void Feed(std::string_view bytes, const PayloadCallback& on_payload);
  // True if the input so far ends in the middle of a header or payload.
  bool mid_frame() const noexcept { return header_fill_ != 0 || remaining_ != 0; }

 private:
  uint8_t header_[8] = {};
  size_t header_fill_ = 0;
  uint32_t remaining_ = 0;  // payload bytes still owed by the current frame
  StreamType type_ = StreamType::kStdout;
  bool raw_ = false;
};

// One message of `GET /events` (docs/protocols.md section 3), reduced to what we read.
struct EngineEvent {
  std::string type;    // Type: "image", "container", "network", "volume", "daemon", ...
  std::string action;  // Action: "tag", "untag", "delete", "oom", "die", ...
  // Actor.ID: the image ID ("sha256:...") of image events (for "pull", the reference
  // pulled), the container ID of container events.
  std::string id;
  // Actor.Attributes: "name" (for image events the tag of "tag", but the image ID again for
  // "untag" and "delete"; for container events the container's name), plus the image's or
  // container's labels.
  std::map<std::string, std::string> attributes;
  int64_t time_nano = 0;  // timeNano: Unix time in nanoseconds
};

// Cuts a byte stream into '\n'-terminated lines; the bytes may be fed split anywhere (the
// engine's chunks need not end at a line). Used for the event stream, one JSON object a
// line.
class LineSplitter {
 public:
  // Appends every line completed by `bytes` to `lines`, without its '\n' (nor a '\r'
  // before it). Empty lines are skipped.
  void Feed(std::string_view bytes, std::vector<std::string>* lines);
  // Bytes of an unfinished line held back.
  size_t pending() const noexcept { return partial_.size(); }

 private:
  std::string partial_;
};

// One line of the event stream as an EngineEvent; nullopt if it is not a JSON object with
// a Type or an Action. Exposed for tests.
std::optional<EngineEvent> ParseEngineEvent(std::string_view line);

// The familiar form of an image reference, the way the engine names tags in its events:
// "busybox", "busybox:latest", "library/busybox" and "docker.io/library/busybox:latest" are
// all "busybox:latest"; another registry's domain is kept ("localhost:5000/x:1"); a
// digest is kept and gets no ":latest"; an ID ("sha256:...") is returned unchanged.
std::string NormalizeImageRef(std::string_view ref);

// The `State` of `GET /containers/{id}/json`.
struct ContainerState {
  std::string status;  // "created", "running", "exited", ...
  bool running = false;
  bool oom_killed = false;  // tells a memory-limit kill (exit 137) from any other SIGKILL
  int pid = 0;
  int exit_code = 0;
  std::string error;  // the engine's note, e.g. why start failed
};

// The engine's JSON answers to image inspect, container inspect and container list, as
// the client reads them (exposed for tests and fuzzing). kInvalidArgument if the body is
// not the expected JSON shape; fields that are missing or of another type are left empty.
Status ParseImageInspect(std::string_view body, ImageConfig* out);
Status ParseContainerInspect(std::string_view body, ContainerState* out);
Status ParseContainerList(std::string_view body, std::vector<ContainerSummary>* out);

class DockerClient final {
 public:
  // Names a wait, attach or events stream in flight, for Cancel(). Never 0.
  using RequestId = uint64_t;

  // `endpoint` is a unix socket path ("/var/run/docker.sock" or "unix:///path") or
  // "tcp://host:port" / "http://host:port" (plain HTTP, no TLS). Does not connect: the first
  // call reports an unreachable engine. Null (and `error` set) for a malformed endpoint.
  static std::unique_ptr<DockerClient> Create(uv_loop_t* loop, std::string endpoint,
                                              Status* error = nullptr);
  // DOCKER_HOST if set (unix://, tcp:// or http://), else "/var/run/docker.sock".
  static std::string DefaultSocketPath();

  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  // GET /_ping.
  void Ping(std::function<void(Status)> done);

  // GET /images/{image}/json. Answers are cached per image name as given, and concurrent
  // calls for one name share one request, until a Forget call below drops the entry.
  // Errors are never cached: a removed image is NotFound (naming it) on the first call
  // after its entry was forgotten. A call made after a Forget that covers its name never
  // gets the answer of a request sent before that Forget; it starts a fresh one. With
  // the cache disabled, every call sends its own request.
  // The cache is only as fresh as its invalidation: scheduler::ImageWatcher follows the
  // engine's image events and calls the Forget functions; without it, entries live until
  // forgotten by hand.
  void InspectImage(const std::string& image, std::function<void(Status, const ImageConfig&)> done);
  // Drops the entries of every name that refers to the same image as `image` (compared
  // with NormalizeImageRef: "busybox" and "docker.io/library/busybox:latest" are one), as
  // after a "tag" event or a rebuild.
  void ForgetImage(const std::string& image);
  // Drops every entry whose image ID is `image_id` ("sha256:..."), whatever its name:
  // the engine's "untag" and "delete" events give only the ID. Requests in flight are
  // treated as stale too (their image IDs are not known yet): their answers reach their
  // callers but are not cached.
  void ForgetImageId(const std::string& image_id);
  // Drops every entry; requests in flight become stale as above.
  void ForgetAllImages();
  // On by default. Turning it off forgets everything; while off, InspectImage always asks
  // the engine (the fallback while nobody follows the engine's events).
  void set_image_cache_enabled(bool enabled);
  bool image_cache_enabled() const noexcept { return image_cache_enabled_; }
  size_t cached_images() const noexcept { return image_cache_.size(); }
  // POST /images/{source}/tag?repo=&tag=: `target` ("repo[:tag]", tag "latest" if none)
  // then names the image `source` names. 404 => NotFound naming `source`.
  void TagImage(const std::string& source, const std::string& target,
                std::function<void(Status)> done);
  // DELETE /images/{image}: removes the tag, and the image once no tag is left. 404 =>
  // NotFound naming it; 409 (a container uses it, or a bare ID has several tags) =>
  // Conflict.
  void RemoveImage(const std::string& image, std::function<void(Status)> done);

  // POST /containers/create[?name=]. 404 => NotFound naming the image.
  void CreateContainer(const ContainerSpec& spec, std::function<void(Status, std::string id)> done);
  // POST /containers/{id}/start. 304 (already started) counts as ok.
  void StartContainer(const std::string& id, std::function<void(Status)> done);
  // POST /containers/{id}/wait?condition=next-exit: `done` runs when the container exits.
  // Call it before StartContainer; prefer the overload below on the cold path.
  RequestId WaitContainer(const std::string& id, std::function<void(Status, int exit_code)> done);
  // As above, and `on_waiting` runs once the engine has registered the wait (response
  // headers received): starting the container after that cannot miss its exit. If
  // on_waiting gets an error, `done` never runs; otherwise `done` runs exactly once.
  RequestId WaitContainer(const std::string& id, std::function<void(Status)> on_waiting,
                          std::function<void(Status, int exit_code)> done);
  // POST /containers/{id}/kill (SIGKILL). 409 (not running) counts as ok.
  void KillContainer(const std::string& id, std::function<void(Status)> done);
  // DELETE /containers/{id}?force=true&v=true. 404 (already gone) counts as ok.
  void RemoveContainer(const std::string& id, std::function<void(Status)> done);
  // GET /containers/json?all=1&filters={"label":[label_filter]}; label_filter is "k" or
  // "k=v" (empty: every container). Ids in the engine's order (newest first).
  void ListContainers(const std::string& label_filter,
                      std::function<void(Status, std::vector<std::string> ids)> done);
  // The same list with each container's labels and state ("created", "running", ...).
  void ListContainerSummaries(const std::string& label_filter,
                              std::function<void(Status, std::vector<ContainerSummary>)> done);
  // GET /containers/{id}/json, reduced to its State (OOMKilled included). 404 => NotFound
  // naming the container.
  void InspectContainer(const std::string& id,
                        std::function<void(Status, const ContainerState&)> done);
  // GET /containers/{id}/logs?stdout=1&stderr=1: stdout and stderr, demultiplexed and
  // interleaved in the order the engine stored them.
  void Logs(const std::string& id, std::function<void(Status, std::string output)> done);

  // POST /containers/{id}/attach?stream=1&stdout=1&stderr=1, a streaming request.
  // `on_attached` runs once the engine answered (headers received), so the caller can
  // start the container then. If it gets an error, nothing else runs. Otherwise
  // `on_data` runs for every piece of output as it arrives (demultiplexed), and `on_end`
  // exactly once when the stream ends (the container exited: ok; or a transport error).
  RequestId Attach(const std::string& id, std::function<void(Status)> on_attached,
                   std::function<void(StreamType, std::string_view)> on_data,
                   std::function<void(Status)> on_end);

  // GET /events?filters=<filters_json>[&since=], a streaming request: the engine's events
  // as they happen, e.g. filters_json {"type":["image"]} for tags and removals, or
  // {"type":["container"],"event":["oom"]} for memory-limit kills. Empty: every event.
  // `on_started` runs once the engine answered (headers received); if it gets an error
  // (an unreachable engine, a malformed filter: InvalidArgument), nothing else runs.
  // Otherwise `on_event` runs for every event in the engine's order, and `on_end` exactly
  // once when the stream ends: ok if the engine closed it cleanly, Unavailable if the
  // connection broke, TooLarge for a line over 1 MiB. The stream has no timeout; Cancel()
  // stops it. Lines that are not events are logged and skipped.
  // The engine sends its headers before it subscribes the stream, so an event right after
  // on_started could be missed; `since_unix_ms` > 0 closes that gap: the engine first
  // replays the events it kept (its last 256) from that time on.
  RequestId Events(const std::string& filters_json, int64_t since_unix_ms,
                   std::function<void(Status)> on_started,
                   std::function<void(const EngineEvent&)> on_event,
                   std::function<void(Status)> on_end);
  // As above without `since` nor on_started: a failure to start reaches on_end.
  RequestId Events(const std::string& filters_json,
                   std::function<void(const EngineEvent&)> on_event,
                   std::function<void(Status)> on_end);

  // Stops a wait, attach or events stream: its connection is closed and none of its
  // callbacks runs after this returns (not even one that is running now: it finishes, no
  // further one starts). Safe from inside any callback, its own included, and for an id
  // that already finished.
  void Cancel(RequestId id);

  // Total timeout of the bounded calls (all but wait, attach and events); 60 s unless set.
  // Applies to calls started afterwards.
  void set_request_timeout_ms(long ms) noexcept { request_timeout_ms_ = ms; }

  const std::string& endpoint() const noexcept { return endpoint_; }
  // Internal: one HTTP exchange in flight (defined in docker_client.cc; curl's C callbacks
  // there need the name).
  struct Request;
  // Requests started and not finished (wait, attach and events included).
  size_t in_flight() const noexcept;
  // Number of image inspections that went to the engine (a cache hit does not count).
  uint64_t image_inspections_sent() const noexcept { return image_inspections_sent_; }
  // Connections curl opened to the engine so far (keep-alive keeps this low).
  uint64_t connections_opened() const noexcept { return connections_opened_; }

 private:
  DockerClient(uv_loop_t* loop, std::string endpoint, std::string unix_socket,
               std::string base_url);

  // Builds and starts one request; `finish` runs with the transport result (which the
  // caller maps with TransportError) and the response.
  Request* Send(std::string method, std::string path, std::string body, bool streaming,
                std::function<void(Request&, int curl_code)> finish);
  void OnTransferDone(uint64_t request_id, int curl_code);
  void DeliverStreamEvents();
  bool DeliverStreamEventsOf(Request& r);  // false if the client was destroyed
  // Runs `fn` on a later loop iteration (for answers known without the engine).
  void Defer(std::function<void()> fn);
  void RunDeferred();

  uv_loop_t* loop_;
  std::string endpoint_;     // as given, for messages
  std::string unix_socket_;  // empty for tcp
  std::string base_url_;     // "http://localhost/v1.41" or "http://host:port/v1.41"
  std::unique_ptr<CurlMulti> multi_;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;
  uint64_t next_request_id_ = 1;
  // Marks inspections in flight stale (their answers are not cached) and takes them off
  // image_inflight_, so later callers start fresh requests.
  template <typename Pred>
  void StaleInflight(Pred pred);

  std::unordered_map<std::string, ImageConfig> image_cache_;
  // One inspection in flight per name (shared by concurrent callers); see the .cc.
  struct ImageInspection;
  std::unordered_map<std::string, std::shared_ptr<ImageInspection>> image_inflight_;
  bool image_cache_enabled_ = true;
  uint64_t image_inspections_sent_ = 0;
  uint64_t connections_opened_ = 0;
  long request_timeout_ms_ = 60000;
  UvHandle<uv_timer_t> defer_timer_;
  std::vector<std::function<void()>> deferred_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Exposed for tests: how an HTTP answer from the engine becomes a Status.
// `operation` is the verb attempted ("create", "start", "inspect", ...); `target` and `name`
// say what it was about (for create, the image). The engine's `message` field is quoted.
enum class Target { kEngine, kImage, kContainer };
Status EngineError(std::string_view operation, Target target, std::string_view name,
                   long http_status, std::string_view body);
// The `message` field of an engine error body, or the body itself (trimmed) if it is not
// the usual JSON.
std::string EngineMessage(std::string_view body);
// How a curl failure becomes a Status (Unavailable for an engine that cannot be reached,
// Timeout for an expired request).
Status TransportError(std::string_view endpoint, std::string_view operation, int curl_code,
                      std::string_view curl_message);

}  // namespace ephemera::docker
