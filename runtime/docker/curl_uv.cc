// runtime/docker/curl_uv.cc: see curl_uv.h for the contract.
//
// The dance, in order: curl_multi_add_handle makes curl call the timer callback (usually
// with 0 ms); the timer fires on the next loop iteration and Act(CURL_SOCKET_TIMEOUT)
// lets curl connect, which makes it call the socket callback for the new socket; we poll
// that socket and hand readiness back to Act(fd, events). After every Act the owner's
// hook runs and then the finished transfers are delivered. Nothing here calls into curl
// from inside a curl callback.
#include "runtime/docker/curl_uv.h"

#include <mutex>
#include <vector>

#include "runtime/core/log.h"

namespace ephemera::docker {

// A uv_poll_t for one curl socket. The struct is the poll's memory, so it is freed in the
// poll's close callback and nowhere else. `owner` is cleared when the watch is closed.
struct CurlMulti::SocketWatch {
  uv_poll_t poll;
  curl_socket_t fd;
  CurlMulti* owner;
};

// C trampolines. Each catches everything: exceptions never cross a C frame.
struct CurlMultiTrampolines {
  static int OnCurlSocket(CURL* /*easy*/, curl_socket_t s, int what, void* userp,
                          void* socketp) noexcept {
    try {
      return static_cast<CurlMulti*>(userp)->WatchSocket(
          s, what, static_cast<CurlMulti::SocketWatch*>(socketp));
    } catch (...) {
      LOG_ERROR("curl", "exception in the socket callback");
      return -1;
    }
  }

  static int OnCurlTimer(CURLM* /*multi*/, long timeout_ms, void* userp) noexcept {
    try {
      static_cast<CurlMulti*>(userp)->ArmTimer(timeout_ms);
      return 0;
    } catch (...) {
      LOG_ERROR("curl", "exception in the timer callback");
      return -1;
    }
  }

  static void OnPoll(uv_poll_t* poll, int status, int events) noexcept {
    auto* watch = reinterpret_cast<CurlMulti::SocketWatch*>(poll);
    if (watch->owner == nullptr) return;
    int flags = 0;
    if (status < 0) {
      flags = CURL_CSELECT_ERR;
    } else {
      if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
      if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    try {
      // Act may close this watch (curl says REMOVE) or destroy the owner: read it first.
      watch->owner->Act(watch->fd, flags);
    } catch (...) {
      LOG_ERROR("curl", "exception escaped a transfer callback");
    }
  }

  static void OnTimer(uv_timer_t* timer) noexcept {
    auto* self = static_cast<CurlMulti*>(timer->data);
    if (self == nullptr) return;
    try {
      self->Act(CURL_SOCKET_TIMEOUT, 0);
    } catch (...) {
      LOG_ERROR("curl", "exception escaped a transfer callback");
    }
  }
};

std::unique_ptr<CurlMulti> CurlMulti::Create(uv_loop_t* loop, long max_cached_connections) {
  static std::once_flag global_init;
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return nullptr;
  std::unique_ptr<CurlMulti> self(new CurlMulti(loop, multi));
  if (self->timer_.Init(loop, uv_timer_init) < 0) return nullptr;
  self->timer_.get()->data = self.get();

  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &CurlMultiTrampolines::OnCurlSocket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, self.get());
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &CurlMultiTrampolines::OnCurlTimer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, self.get());
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, max_cached_connections);
  return self;
}

CurlMulti::CurlMulti(uv_loop_t* loop, CURLM* multi) : loop_(loop), multi_(multi) {}

CurlMulti::~CurlMulti() {
  *alive_ = false;
  // Removing a transfer may make curl call the socket callback (REMOVE) and the timer
  // callback; both only touch members that are still intact here.
  auto transfers = std::move(transfers_);
  transfers_.clear();
  for (auto& [easy, transfer] : transfers) curl_multi_remove_handle(multi_, easy);
  curl_multi_cleanup(multi_);
  // Whatever curl did not ask us to stop watching is closed now.
  std::vector<SocketWatch*> left(watches_.begin(), watches_.end());
  for (SocketWatch* watch : left) CloseWatch(watch);
  if (timer_) timer_.get()->data = nullptr;
  // timer_ closes itself (UvHandle); its memory is freed in the close callback.
}

Status CurlMulti::Add(CURL* easy, DoneCallback done) {
  if (transfers_.count(easy) != 0) return Internal("curl transfer added twice");
  // Registered first: add_handle may already call the timer callback.
  transfers_[easy] = Transfer{next_serial_++, std::move(done)};
  if (CURLMcode rc = curl_multi_add_handle(multi_, easy); rc != CURLM_OK) {
    transfers_.erase(easy);
    return Internal(std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(rc));
  }
  return Status::Ok();
}

void CurlMulti::Remove(CURL* easy) noexcept {
  auto it = transfers_.find(easy);
  if (it == transfers_.end()) return;
  transfers_.erase(it);
  curl_multi_remove_handle(multi_, easy);
}

int CurlMulti::WatchSocket(curl_socket_t s, int what, SocketWatch* watch) {
  if (what == CURL_POLL_REMOVE) {
    if (watch != nullptr) CloseWatch(watch);
    curl_multi_assign(multi_, s, nullptr);
    return 0;
  }
  if (watch == nullptr) {
    // A socket curl has not told us about before. Its fd may equal one we watched
    // earlier; that watch was closed on REMOVE, so libuv knows the fd no more.
    watch = new SocketWatch{};
    watch->fd = s;
    watch->owner = this;
    if (int rc = uv_poll_init_socket(loop_, &watch->poll, s); rc < 0) {
      LOG_ERROR("curl", "uv_poll_init_socket(%d) failed: %s", static_cast<int>(s), uv_strerror(rc));
      delete watch;  // never initialised, so never closed
      return -1;
    }
    watches_.insert(watch);
    curl_multi_assign(multi_, s, watch);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  if (int rc = uv_poll_start(&watch->poll, events, &CurlMultiTrampolines::OnPoll); rc < 0) {
    LOG_ERROR("curl", "uv_poll_start(%d) failed: %s", static_cast<int>(s), uv_strerror(rc));
    return -1;
  }
  return 0;
}

void CurlMulti::CloseWatch(SocketWatch* watch) noexcept {
  watches_.erase(watch);
  watch->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
           [](uv_handle_t* h) { delete reinterpret_cast<SocketWatch*>(h); });
}

void CurlMulti::ArmTimer(long timeout_ms) {
  if (!timer_) return;
  if (timeout_ms < 0) {
    uv_timer_stop(timer_.get());
    return;
  }
  // Even a 0 ms timeout goes through the loop: curl forbids calling socket_action from
  // inside this callback, and it keeps Add from finishing anything synchronously.
  uv_timer_start(timer_.get(), &CurlMultiTrampolines::OnTimer, static_cast<uint64_t>(timeout_ms),
                 0);
}

void CurlMulti::Act(curl_socket_t s, int events) {
  int still_running = 0;
  curl_multi_socket_action(multi_, s, events, &still_running);
  auto alive = alive_;
  if (after_action_) {
    auto hook = after_action_;  // the hook may destroy us, and with us after_action_
    try {
      hook();
    } catch (...) {
      LOG_ERROR("curl", "exception escaped the after-action hook");
    }
    if (!*alive) return;
  }
  DeliverFinished();
}

void CurlMulti::DeliverFinished() {
  struct Finished {
    CURL* easy;
    CURLcode result;
    uint64_t serial;
  };
  std::vector<Finished> finished;
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    auto it = transfers_.find(msg->easy_handle);
    if (it == transfers_.end()) continue;
    finished.push_back({msg->easy_handle, msg->data.result, it->second.serial});
  }
  auto alive = alive_;
  for (const Finished& f : finished) {
    // An earlier callback may have removed this transfer, or even freed its handle and
    // added a new one at the same address: the serial tells them apart.
    auto it = transfers_.find(f.easy);
    if (it == transfers_.end() || it->second.serial != f.serial) continue;
    DoneCallback done = std::move(it->second.done);
    transfers_.erase(it);
    curl_multi_remove_handle(multi_, f.easy);
    // The messages of this batch are already off curl's queue: an exception must not
    // lose the rest of them, so it stops here.
    try {
      if (done) done(f.result);
    } catch (...) {
      LOG_ERROR("curl", "exception escaped a transfer's done callback");
    }
    if (!*alive) return;
  }
}

}  // namespace ephemera::docker
