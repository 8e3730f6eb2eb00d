// bench/loadgen.h: a closed-loop HTTP/1.1 load generator on libuv, for the warm throughput
// mode and the queued-invocations memory stage.
//
// C keep-alive TCP connections to one address; each sends the same request bytes again as
// soon as the previous reply is whole (headers + Content-Length body), so C requests are
// in flight at all times. Replies in the first `warmup_ms` are not counted; the measured
// window is the `duration_ms` after it. A reply counts as completed when its status is 200
// and, if `expect_header` is set, that header has `expect_value` (X-Ephemera-Start: warm);
// a 200 without it is `mismatched` (`expect_status` replaces 200 where another status is
// the right answer, 202 for Event invocations); anything else (another status, a connection closed
// or refused) is an error, and an errored connection is not reopened.
//
// Hold mode (`requests_per_connection` 1, `duration_ms` 0): every connection sends one
// request and then waits; Stop() closes them all. The daemon sees C invocations whose
// clients are still there, as a queue of synchronous callers would be.
//
// Thread: the loop thread only. Callbacks: `done` runs once, from the loop, after every
// connection is closed. Destroying a running generator closes the connections and drops
// `done`. Depends on: libuv, core (Timer).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/uv_handle.h"

namespace ephemera::bench {

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string request;  // the whole request: head and body
  int connections = 1;
  double warmup_ms = 0;
  double duration_ms = 1000;        // 0 = until Stop()
  int requests_per_connection = 0;  // 0 = unlimited
  // With requests_per_connection: a connection that has all its replies closes, and the
  // run ends when all have (a batch). Otherwise they stay open until the window ends or
  // Stop() (hold mode).
  bool close_when_done = false;
  int expect_status = 200;
  std::string expect_header;  // e.g. "X-Ephemera-Start"; "" = any 200 counts
  std::string expect_value;   // e.g. "warm"
  std::function<void()> on_window_start, on_window_end;  // CPU snapshots, say
};

struct LoadResult {
  uint64_t completed = 0;               // in the window
  uint64_t mismatched = 0;              // in the window
  uint64_t errors = 0;                  // at any time
  uint64_t sent = 0;                    // requests written, at any time
  uint64_t answered = 0;                // replies of any kind, at any time
  double window_ms = 0;                 // the measured window as it happened
  std::vector<double> latencies;        // ms, completed requests in the window
  std::vector<std::string> messages;    // the first few errors
  std::vector<std::string> mismatches;  // the first few unexpected header values, in the window
};

// Builds a POST with a Content-Length body, keep-alive (the HTTP/1.1 default).
std::string HttpPost(const std::string& host_port, const std::string& path, const std::string& body,
                     const std::string& extra_headers = "");

class LoadGenerator {
 public:
  LoadGenerator(uv_loop_t* loop, LoadOptions options);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  void Run(std::function<void(LoadResult)> done);
  // Ends the run now (hold mode, or early): every connection is closed, then `done` runs.
  void Stop();
  const LoadResult& progress() const { return result_; }
  struct Conn;

 private:
  friend struct Conn;
  void Send(Conn* c);
  void OnReply(Conn* c, int status, bool matched, double latency_ms, std::string detail);
  void OnError(Conn* c, std::string why);
  void CloseConn(Conn* c);
  void OnClosed(Conn* c);
  void WindowStart();
  void WindowEnd();
  bool InWindow() const { return window_open_; }

  uv_loop_t* loop_;
  LoadOptions o_;
  LoadResult result_;
  std::vector<Conn*> conns_;  // each freed by its handle's close callback
  int open_ = 0;              // connections not yet closed
  std::unique_ptr<Timer> timer_;
  double window_t0_ = 0;
  bool window_open_ = false, window_done_ = false, stopping_ = false;
  std::function<void(LoadResult)> done_;
};

}  // namespace ephemera::bench
