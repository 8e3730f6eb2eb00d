// runtime/core/uv_handle.h: ownership of one libuv handle (timer, signal, poll, tcp).
//
// libuv may touch a handle until its close callback has run, so the memory is
// released there and nowhere else. Init either succeeds and the wrapper owns the
// handle, or fails and it owns nothing (a handle whose init failed must not be
// closed). Close() is idempotent; the destructor closes.
// Thread: the loop thread only. Depends on: libuv.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <utility>

namespace ephemera {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  ~UvHandle() { Close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  // Returns 0 or a negative UV_E* code; on failure nothing is owned.
  template <typename InitFn, typename... Args>
  [[nodiscard]] int Init(uv_loop_t* loop, InitFn init, Args&&... args) {
    Close();
    auto fresh = std::make_unique<T>();
    if (int rc = init(loop, fresh.get(), std::forward<Args>(args)...); rc < 0) return rc;
    handle_ = fresh.release();
    return 0;
  }

  void Close() noexcept {
    if (handle_ == nullptr) return;
    auto* base = reinterpret_cast<uv_handle_t*>(std::exchange(handle_, nullptr));
    base->data = nullptr;  // nothing reaches the old owner through it
    uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
  }

  T* get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  T* handle_ = nullptr;
};

// A one-shot or repeating timer that calls a std::function. Stop() or destruction
// guarantees the callback does not run afterwards.
class Timer {
 public:
  explicit Timer(uv_loop_t* loop) : loop_(loop) {}

  // Starts (or restarts) the timer; `fn` runs on the loop after `ms`.
  template <typename Fn>
  void Start(uint64_t ms, Fn fn) {
    fn_ = std::move(fn);
    if (!handle_ && handle_.Init(loop_, uv_timer_init) < 0) return;
    handle_.get()->data = this;
    uv_timer_start(
        handle_.get(),
        [](uv_timer_t* t) {
          auto* self = static_cast<Timer*>(t->data);
          if (self == nullptr) return;
          auto fn = std::move(self->fn_);
          self->fn_ = nullptr;
          if (fn) fn();  // may destroy self: touch nothing after this
        },
        ms, 0);
  }

  void Stop() {
    fn_ = nullptr;
    if (handle_) uv_timer_stop(handle_.get());
  }

  // Stops and releases the handle; Start() makes a new one. Safe inside the callback.
  void Close() {
    fn_ = nullptr;
    handle_.Close();
  }

  bool active() const {
    return handle_ && uv_is_active(reinterpret_cast<uv_handle_t*>(handle_.get()));
  }

 private:
  uv_loop_t* loop_;
  UvHandle<uv_timer_t> handle_;
  std::function<void()> fn_;
};

}  // namespace ephemera
