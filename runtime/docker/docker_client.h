// runtime/docker/docker_client.h: Docker Engine API client over a unix socket (or plain
// HTTP over tcp for a remote engine).
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: exactly once, never from inside the call that started them;
//   destroying the client drops pending callbacks without running them.
//   A callback may destroy the client. Cancel() drops the callbacks of one wait or attach
//   (the exception to "exactly once", asked for by the caller). Invalid arguments (e.g. a relative
//   bind source) are reported through the callback too, on a later loop iteration.
// Depends on: libuv, libcurl (only in docker_client.cc and curl_uv.cc), cJSON, core.
//
// Every call is one HTTP request to API version 1.41 (`/v1.41/...`) through one curl multi
// handle, so keep-alive connections are reused. Engine errors become a Status that names
// the image or container (see EngineError below). Create/start/kill/remove/inspect/list/
// logs time out after 60 s; wait and attach have no total timeout (they last as long as
// the container runs). Every request is logged at debug level with its duration.
//
// The cold path uses the calls in this order (PROTOCOLS.md section 3):
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

// The `State` of `GET /containers/{id}/json`.
struct ContainerState {
  std::string status;  // "created", "running", "exited", ...
  bool running = false;
  bool oom_killed = false;  // tells a memory-limit kill (exit 137) from any other SIGKILL
  int pid = 0;
  int exit_code = 0;
  std::string error;  // the engine's note, e.g. why start failed
};

class DockerClient final {
 public:
  // Names a wait or attach in flight, for Cancel(). Never 0.
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

  // GET /images/{image}/json. Results are cached per image name (concurrent calls for
  // the same name share one request); ForgetImage drops an entry after a rebuild.
  void InspectImage(const std::string& image, std::function<void(Status, const ImageConfig&)> done);
  void ForgetImage(const std::string& image);

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
  // GET /containers/{id}/json, reduced to its State. 404 => NotFound naming the container.
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

  // Stops a wait or attach: its connection is closed and none of its callbacks runs after
  // this returns (not even one that is running now: it finishes, no further one starts).
  // Safe from inside any callback, its own included, and for an id that already finished.
  void Cancel(RequestId id);

  // Total timeout of the bounded calls (all but wait and attach); 60 s unless set. Applies
  // to calls started afterwards.
  void set_request_timeout_ms(long ms) noexcept { request_timeout_ms_ = ms; }

  const std::string& endpoint() const noexcept { return endpoint_; }
  // Internal: one HTTP exchange in flight (defined in docker_client.cc; curl's C callbacks
  // there need the name).
  struct Request;
  // Requests started and not finished (wait and attach included).
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
  std::unordered_map<std::string, ImageConfig> image_cache_;
  std::unordered_map<std::string, std::vector<std::function<void(Status, const ImageConfig&)>>>
      image_waiters_;
  // Images forgotten while an inspection was on its way: that answer is not cached.
  std::unordered_set<std::string> forgotten_in_flight_;
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
