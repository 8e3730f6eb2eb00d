// runtime/scheduler/image_watcher.cc: see image_watcher.h for the contract and for what
// the engine emits.
#include "runtime/scheduler/image_watcher.h"

#include <algorithm>
#include <utility>

#include "runtime/core/clock.h"
#include "runtime/core/log.h"

namespace ephemera::scheduler {
namespace {

constexpr const char* kFilters = "{\"type\":[\"image\"]}";

// "repo:tag" or "repo@digest" (a ':' after the last '/' is a tag, not a registry port).
bool HasTagOrDigest(const std::string& ref) {
  if (ref.find('@') != std::string::npos) return true;
  size_t colon = ref.rfind(':');
  size_t slash = ref.rfind('/');
  return colon != std::string::npos && (slash == std::string::npos || colon > slash);
}

}  // namespace

ImageWatcher::ImageWatcher(uv_loop_t* loop, docker::DockerClient* docker, Listener on_image_changed)
    : ImageWatcher(loop, docker, std::move(on_image_changed), Options{}) {}

ImageWatcher::ImageWatcher(uv_loop_t* loop, docker::DockerClient* docker, Listener on_image_changed,
                           Options options)
    : docker_(docker),
      listener_(std::move(on_image_changed)),
      options_(options),
      retry_timer_(loop),
      backoff_ms_(options.initial_backoff_ms) {}

ImageWatcher::~ImageWatcher() {
  Stop();
}

void ImageWatcher::Start() {
  if (started_) return;
  started_ = true;
  warned_ = false;
  backoff_ms_ = options_.initial_backoff_ms;
  docker_->set_image_cache_enabled(false);  // until the engine confirms the stream
  Connect();
}

void ImageWatcher::Stop() {
  if (!started_) return;
  started_ = false;
  healthy_ = false;
  retry_timer_.Stop();
  if (stream_ != 0) docker_->Cancel(stream_);  // none of its callbacks runs after this
  stream_ = 0;
  docker_->set_image_cache_enabled(false);
}

void ImageWatcher::Connect() {
  // The callbacks need no liveness guard: Stop() (and so the destructor) cancels the
  // stream, after which none of them runs.
  stream_ = docker_->Events(
      kFilters, EpochMs() - options_.since_margin_ms, [this](Status s) { OnStarted(s); },
      [this](const docker::EngineEvent& e) { OnEvent(e); }, [this](Status s) { OnEnd(s); });
}

void ImageWatcher::OnStarted(const Status& status) {
  if (!status.ok()) {
    stream_ = 0;
    return Retry(status);
  }
  healthy_ = true;
  ++connections_;
  backoff_ms_ = options_.initial_backoff_ms;
  if (connections_ == 1 || warned_) {
    LOG_INFO("images", "following the engine's image events%s",
             connections_ == 1 ? "" : " again; every cached image is inspected anew");
  }
  warned_ = false;
  // Events may have been missed while there was no stream: nothing cached is trusted.
  docker_->ForgetAllImages();
  docker_->set_image_cache_enabled(true);
  Notify(kAllImages);
}

void ImageWatcher::OnEvent(const docker::EngineEvent& event) {
  if (event.type != "image") return;
  ++events_;
  const std::string& action = event.action;
  auto name_it = event.attributes.find("name");
  std::string name = name_it == event.attributes.end() ? "" : name_it->second;
  LOG_DEBUG("images", "event %s %s (name %s)", action.c_str(), event.id.c_str(), name.c_str());
  if (action == "tag") {
    if (name.empty()) return;
    docker_->ForgetImage(name);
    Notify(name);
  } else if (action == "untag" || action == "delete") {
    if (event.id.empty()) return;
    docker_->ForgetImageId(event.id);
    Notify(event.id);
  } else if (action == "load" || (action == "pull" && !HasTagOrDigest(event.id))) {
    docker_->ForgetAllImages();
    Notify(kAllImages);
  } else if (action == "pull") {
    docker_->ForgetImage(event.id);
    Notify(event.id);
  }
  // import (its "tag" event does the work), prune (a "delete" per image came first), save,
  // push: nothing changes what a name points to.
}

void ImageWatcher::OnEnd(const Status& status) {
  stream_ = 0;
  healthy_ = false;
  docker_->set_image_cache_enabled(false);
  Retry(status);
}

void ImageWatcher::Retry(const Status& why) {
  healthy_ = false;
  retry_delay_ms_ = backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, options_.max_backoff_ms);
  if (!warned_) {
    warned_ = true;
    LOG_WARN("images",
             "the engine's image event stream is down (%s); every cold start inspects its "
             "image until it is back; retrying in %llu ms",
             why.ok() ? "it ended" : why.message().c_str(),
             static_cast<unsigned long long>(retry_delay_ms_));
  } else {
    LOG_DEBUG("images", "image events: %s; retrying in %llu ms",
              why.ok() ? "ended" : why.message().c_str(),
              static_cast<unsigned long long>(retry_delay_ms_));
  }
  retry_timer_.Start(retry_delay_ms_, [this] { Connect(); });
}

void ImageWatcher::Notify(const std::string& what) {
  if (!listener_) return;
  auto listener = listener_;  // a copy: the listener may destroy the watcher
  listener(what);
}

}  // namespace ephemera::scheduler
