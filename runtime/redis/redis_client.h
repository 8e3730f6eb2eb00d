// runtime/redis/redis_client.h: one Redis connection, driven by the daemon's libuv loop.
//
// The one place where hiredis meets libuv (docs/style.md rule 2): redis_client.cc is the
// only file that includes hiredis's async API and holds its libuv event hooks (hiredis's
// adapters/libuv.h, with the poll-error fix of hiredis 1.0; see the .cc). Everything else
// sees this interface and redis::Reply values.
//
// Connection: Connect() starts connecting to the URL (redis_url.h). Each connection sends,
// pipelined, AUTH (when the URL carries a password), SELECT (db != 0), CLIENT SETNAME (when
// a name is set) and PING; the client is ready() once PING answers. After any disconnect
// (Redis stopped, killed or restarted, the socket broken, a command or heartbeat timing
// out, AUTH refused) it connects again after a backoff: backoff_initial_ms, doubling on
// every failed attempt up to backoff_max_ms, back to the initial value once ready. Nothing
// has to be restarted when Redis comes back. While ready and idle, a PING every
// heartbeat_ms notices a Redis that stopped answering (SIGSTOP, DEBUG SLEEP) within
// heartbeat_ms + command timeout.
//
// Commands: Command(argv, cb) sends one command (binary-safe arguments). Its callback runs
// exactly once, never from inside Command() (docs/style.md rule 5), with:
//   - ok and the reply, copied into a redis::Reply (docs/style.md rule 7);
//   - kInternal and the reply (type kError) when Redis answered with an error reply;
//   - kUnavailable when the command was NOT sent: the client is not ready (disconnected,
//     connecting, backing off). This is immediate (next loop turn), never queued; the
//     message names Redis and the URL (password redacted);
//   - kTimeout when it was sent and no answer came within its timeout (default
//     command_timeout_ms), or the connection was lost before the answer: Redis may or may
//     not have executed it. A timeout also drops the connection (its replies can no longer
//     be trusted to arrive) and reconnects.
// Success and error replies are delivered from hiredis's read callback; failures without
// a reply (kUnavailable, kTimeout) from a later loop turn.
// A command's timeout is checked only after the loop has polled for I/O once more past its
// deadline, so a reply that is already in the socket when the loop wakes up late still
// wins over the timeout.
// Blocking commands (XREADGROUP BLOCK, BLPOP) hold the connection: every later command on
// the same Client waits behind them, so they belong on a Client of their own, with a
// timeout longer than the block.
//
// Thread: the loop thread only; nothing blocks except the name lookup of a TCP host
// (getaddrinfo inside hiredis's connect; instant for an IP address or "localhost").
// Ownership: the Client owns its hiredis context (hiredis itself frees it after a
// disconnect it detects; the client forgets it at that moment). Destroying the Client
// drops pending callbacks without running them and closes its handles; the loop must run
// afterwards for libuv's close callbacks.
// Depends on: libuv, hiredis 0.14 (only in redis_client.cc), core.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/redis/redis_url.h"
#include "runtime/redis/reply.h"

struct redisAsyncContext;

namespace ephemera::redis {

struct ClientOptions {
  RedisUrl url;
  std::string name;  // CLIENT SETNAME (letters, digits, '-', '_', ':', '.'); "" = none
  uint64_t command_timeout_ms = 2000;
  uint64_t backoff_initial_ms = 100;
  uint64_t backoff_max_ms = 5000;
  // A PING when idle, to notice a Redis that stopped answering; 0 = none. Leave it 0 on a
  // Client that carries blocking commands (the PING would wait behind the block).
  uint64_t heartbeat_ms = 1000;
};

struct ClientStats {
  uint64_t connects = 0;       // times the client became ready
  uint64_t disconnects = 0;    // times a ready connection was lost
  uint64_t attempts = 0;       // connection attempts
  uint64_t failed_attempts = 0;  // attempts that ended without becoming ready
  uint64_t commands = 0;       // commands sent
  uint64_t unavailable = 0;    // commands refused at once (not ready)
  uint64_t timeouts = 0;       // commands without an answer in time
  uint64_t error_replies = 0;  // error replies
};

class Client {
 public:
  using Callback = std::function<void(Status, Reply)>;
  // Called after every change of ready(): true once ready, false when a ready connection
  // is lost (with the reason). Not called for failed attempts while not ready.
  using StateListener = std::function<void(bool ready, const Status& why)>;

  Client(uv_loop_t* loop, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting (and reconnecting forever). Idempotent.
  void Connect();
  // `timeout_ms` 0 = the client's command_timeout_ms.
  void Command(std::vector<std::string> argv, Callback cb, uint64_t timeout_ms = 0);

  bool ready() const { return state_ == State::kReady; }
  // The URL with the password redacted.
  const std::string& url() const { return url_text_; }
  // Why the client is not ready (the last connection failure), "" while ready.
  const std::string& last_error() const { return last_error_; }
  const ClientStats& stats() const { return stats_; }
  const ClientOptions& options() const { return options_; }
  void set_state_listener(StateListener listener) { listener_ = std::move(listener); }

 private:
  enum class State { kIdle, kConnecting, kReady, kBackoff };
  struct Pending {
    Callback cb;
    double deadline_ms;
    std::string command;  // its name, for messages
  };

  void StartAttempt();
  void FailAttempt(const std::string& why);
  // Sends on the current connection; returns its id, or 0 if hiredis refused it (then `cb`
  // is left to the caller).
  uint64_t Send(std::vector<std::string> argv, Callback& cb, uint64_t timeout_ms);
  void OnHandshakeStep(const std::string& what, const Status& s);
  void BecomeReady();
  // Forgets the current connection, fails every pending command (kTimeout: they were sent)
  // and schedules the next attempt. `inside_hiredis_teardown`: called from hiredis's
  // connect or disconnect callback, where hiredis frees the context itself.
  void Drop(const Status& why, bool inside_hiredis_teardown);
  void ScheduleReconnect();
  void ArmTimeouts();
  void CheckTimeouts();
  void Heartbeat();
  void Defer(std::function<void()> fn);
  void RunDeferred();
  Status NotReady(const std::string& command) const;

  // The hiredis trampolines (redis_client.cc) reach the client through these.
  friend struct Trampolines;
  void OnReply(uint64_t id, Status s, Reply r);
  void OnConnected(redisAsyncContext* ac, bool ok, const std::string& error);
  void OnDisconnected(redisAsyncContext* ac, const std::string& error);

  uv_loop_t* loop_;
  ClientOptions options_;
  std::string url_text_;
  State state_ = State::kIdle;
  redisAsyncContext* ctx_ = nullptr;  // the current connection, or null
  uint64_t attempt_ = 0;              // connection attempts so far; tags handshake callbacks
  std::unordered_map<uint64_t, Pending> pending_;  // sent, not answered
  uint64_t next_id_ = 1;
  uint64_t backoff_ms_;
  double next_attempt_ms_ = 0;
  int handshake_left_ = 0;
  Status handshake_error_;
  bool heartbeat_outstanding_ = false;
  bool outage_logged_ = false;  // one warning per outage, not one per attempt
  double armed_deadline_ = 0;
  std::string last_error_;
  ClientStats stats_;
  StateListener listener_;
  Timer reconnect_timer_;
  Timer timeout_timer_;
  Timer heartbeat_timer_;
  Timer defer_timer_;
  std::vector<std::function<void()>> deferred_;
  std::shared_ptr<bool> alive_;  // false once destroyed, checked between deferred callbacks
};

}  // namespace ephemera::redis
