// runtime/scheduler/image_watcher.h: follows the engine's image events, so that what
// DockerClient caches about an image never outlives what its name points to.
//
// The image's ID decides what runs. DockerClient::InspectImage caches per name; asking the
// engine on every cold start would cost a round trip each time (see the measurement in
// tests/docker/image_inspect_latency.cc). Instead this watcher owns one streaming
// `GET /events?filters={"type":["image"]}` (docs/protocols.md section 3) and, for every
// event that can change what a name points to, forgets the affected cache entries and
// tells its listener the name or ID, so the scheduler can drain environments whose image
// ID is no longer what their tag points to (it inspects the tag afresh and compares IDs).
//
// What Docker 20.10.24 emits (seen on this engine with /usr/bin/docker, filter type=image):
//   docker build -t t:x, classic builder or BuildKit, over an existing tag or not, and even
//       when nothing changed: one "tag", Actor.ID = the new image ID, name = "t:x" (plus
//       the image's labels as attributes). Nothing is said about the image that lost the
//       tag: it becomes dangling and keeps its ID.
//   docker tag src t:x (a new tag, or one re-pointed from another image): "tag" as above.
//   docker rmi t:x while the image keeps other tags: "untag", and its name attribute is
//       the image ID, not the tag.
//   docker rmi of an image's last tag: "untag" then "delete" (and a "delete" per parent
//       image removed with it), all naming the ID. docker rmi -f <id> with two tags:
//       "untag" twice, then "delete".
//   docker import f t:x: "tag" (name t:x), then "import" (name = the ID); without t:x
//       only "import".
//   docker load: "load" naming the ID only; the tags it sets or moves are not reported.
//   docker image prune: a "delete" per image, then "prune" (no ID; attribute reclaimed).
//   docker save: "save". docker pull (not seen here, no registry reachable; from the 20.10
//       sources): "pull", Actor.ID = the reference pulled ("busybox:latest", or "busybox"
//       with --all-tags), name = the repository; the tags it moves are not reported.
// Hence:
//   tag                  -> DockerClient::ForgetImage(name), listener(name)
//   untag, delete        -> DockerClient::ForgetImageId(id), listener(id)
//   load                 -> ForgetAllImages(), listener(kAllImages)
//   pull of "repo:tag" or "repo@digest" -> ForgetImage(ref), listener(ref);
//   pull of a bare repository -> ForgetAllImages(), listener(kAllImages)
//   import, prune, save, push, anything else -> nothing (import's own "tag" does the work)
//
// Disconnections: the stream ends when the engine restarts or drops it. While it is down
// the cache cannot be trusted, so the watcher turns DockerClient's image cache off (every
// InspectImage asks the engine) and reconnects with backoff (100 ms, doubling, at most
// 5 s; back to 100 ms once a stream is up). On every (re)connect, the first included, it
// forgets the whole cache, turns it back on and calls listener(kAllImages): events may
// have been missed. The engine sends its headers before it subscribes the stream, so each
// request asks for the events since a second before it was sent (the engine replays what
// it kept): a change in that gap is seen; a replayed one only costs a second inspection.
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: the listener runs for every change, always from the loop (never from inside
//   Start, Stop or the constructor); it may destroy the watcher. Nothing runs after Stop()
//   or destruction.
// Ownership: `docker` must outlive the watcher. The watcher changes its image cache
//   (Forget*, set_image_cache_enabled); Stop() and destruction leave the cache off, since
//   nobody follows the events any more.
// Depends on: runtime/docker, runtime/core.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::scheduler {

class ImageWatcher final {
 public:
  // The listener's argument when any image may have changed (a (re)connect, a load).
  static constexpr const char* kAllImages = "";

  struct Options {
    uint64_t initial_backoff_ms = 100;
    uint64_t max_backoff_ms = 5000;
    // How far before each request its `since` is (covers the engine's subscribe gap).
    int64_t since_margin_ms = 1000;
  };
  // `image_ref_or_id`: a tag as the engine names it ("ephemera/echo:latest"), an image ID
  // ("sha256:..."), a pulled reference, or kAllImages.
  using Listener = std::function<void(const std::string& image_ref_or_id)>;

  ImageWatcher(uv_loop_t* loop, docker::DockerClient* docker, Listener on_image_changed);
  ImageWatcher(uv_loop_t* loop, docker::DockerClient* docker, Listener on_image_changed,
               Options options);
  ~ImageWatcher();
  ImageWatcher(const ImageWatcher&) = delete;
  ImageWatcher& operator=(const ImageWatcher&) = delete;

  // Turns the image cache off and opens the stream; the cache comes back on when the
  // engine confirms it. Idempotent.
  void Start();
  // Closes the stream, stops reconnecting and turns the cache off. Start() may follow.
  void Stop();

  // Whether the stream is up (confirmed by the engine, not ended since). While it is not,
  // DockerClient's image cache is off, so every InspectImage asks the engine.
  bool healthy() const noexcept { return healthy_; }
  // Streams the engine confirmed so far (1 after the first connect).
  uint64_t connections() const noexcept { return connections_; }
  // Image events received so far, acted on or not.
  uint64_t events() const noexcept { return events_; }
  // The delay before the latest reconnection attempt (0 before the first).
  uint64_t retry_delay_ms() const noexcept { return retry_delay_ms_; }

 private:
  void Connect();
  void OnStarted(const Status& status);
  void OnEvent(const docker::EngineEvent& event);
  void OnEnd(const Status& status);
  void Retry(const Status& why);
  void Notify(const std::string& what);

  docker::DockerClient* docker_;
  Listener listener_;
  Options options_;
  Timer retry_timer_;
  docker::DockerClient::RequestId stream_ = 0;
  bool started_ = false;
  bool healthy_ = false;
  bool warned_ = false;  // a disconnection was logged; quiet until the next connect
  uint64_t backoff_ms_;
  uint64_t retry_delay_ms_ = 0;
  uint64_t connections_ = 0;
  uint64_t events_ = 0;
};

}  // namespace ephemera::scheduler
