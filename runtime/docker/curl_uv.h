// runtime/docker/curl_uv.h: libcurl's multi interface driven by the libuv loop.
//
// CurlMulti is the one place where libcurl meets libuv (docs/style.md rule 2). curl tells us
// which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t per socket, attached
// to curl's socket with curl_multi_assign so a closed fd that curl reuses for a new
// connection gets a fresh poll) and when to wake it (CURLMOPT_TIMERFUNCTION: one
// uv_timer_t). Readiness and timeouts go back with curl_multi_socket_action; finished
// transfers are then read with curl_multi_info_read.
//
// Ownership: the caller owns each CURL easy handle and whatever its options point at
// (header lists, buffers) and must keep them alive until the handle is done or removed.
// The multi owns its poll and timer handles; each is closed exactly once and freed in its
// close callback. One multi means one connection cache, so keep-alive connections to the
// same peer are reused across requests.
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: `done` runs exactly once per Add that returned ok, never from inside Add;
//   the easy handle has already been removed from the multi when it runs, so the callback
//   may free it. Remove() and destroying the CurlMulti drop pending callbacks without
//   running them. A callback may destroy the CurlMulti.
//   The after-action hook runs after every batch of curl progress (before the batch's
//   `done` callbacks), outside every curl callback; owners use it to deliver streaming
//   events that curl's write and header callbacks could only buffer.
// Depends on: libuv, libcurl, runtime/core.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"

namespace ephemera::docker {

class CurlMulti final {
 public:
  using DoneCallback = std::function<void(CURLcode result)>;

  // Null if curl cannot make a multi handle or libuv a timer (both mean out of memory).
  static std::unique_ptr<CurlMulti> Create(uv_loop_t* loop, long max_cached_connections = 16);
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  // Starts the transfer `easy` (fully configured by the caller). On failure nothing is
  // started and `done` will never run.
  [[nodiscard]] Status Add(CURL* easy, DoneCallback done);

  // Stops the transfer `easy` if it is running; its `done` callback never runs. Safe to
  // call for a handle that already finished or was never added.
  void Remove(CURL* easy) noexcept;

  // Runs after each batch of progress; see the header comment. May destroy the CurlMulti.
  void SetAfterAction(std::function<void()> hook) { after_action_ = std::move(hook); }

  uv_loop_t* loop() const noexcept { return loop_; }
  size_t running() const noexcept { return transfers_.size(); }

 private:
  struct SocketWatch;  // one uv_poll_t for one curl socket
  struct Transfer {
    uint64_t serial;  // tells a finished transfer from a new one reusing the CURL*
    DoneCallback done;
  };

  CurlMulti(uv_loop_t* loop, CURLM* multi);

  // The curl callbacks (see curl_uv.cc for the trampolines).
  int WatchSocket(curl_socket_t s, int what, SocketWatch* watch);
  void ArmTimer(long timeout_ms);
  // One socket_action call followed by the hook and the finished transfers.
  void Act(curl_socket_t s, int events);
  void DeliverFinished();
  void CloseWatch(SocketWatch* watch) noexcept;

  uv_loop_t* loop_;
  CURLM* multi_;
  UvHandle<uv_timer_t> timer_;
  std::unordered_map<CURL*, Transfer> transfers_;
  std::unordered_set<SocketWatch*> watches_;
  std::function<void()> after_action_;
  uint64_t next_serial_ = 1;
  // Shared with the frames that run callbacks: false once the multi is destroyed, so a
  // frame whose callback destroyed it returns without touching anything.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  friend struct CurlMultiTrampolines;
};

}  // namespace ephemera::docker
