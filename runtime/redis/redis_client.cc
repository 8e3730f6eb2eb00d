// runtime/redis/redis_client.cc: hiredis's async API on the daemon's libuv loop.
//
// This is the only file that includes hiredis's async API and ties it to libuv
// (docs/style.md rule 2). What hiredis 0.14 does that the code below relies on (its
// async.c as packaged by Debian):
//   - a reply callback runs with the context flagged "in callback": redisAsyncFree() from
//     inside it only marks the context, which hiredis frees once the callback returns;
//   - the connect and disconnect callbacks are NOT flagged: freeing the context there is
//     a double free. On a failed connect hiredis frees the context right after the connect
//     callback; on a disconnect it detects (EOF, socket error) it first runs every pending
//     reply callback with a NULL reply, then the disconnect callback, then frees;
//   - redisAsyncFree() itself runs the pending reply callbacks (NULL reply) and the
//     disconnect callback synchronously, then the event hooks' cleanup.
// So: each callback's privdata is a command id, never a pointer; `ac->data` is the Client
// while the context is current and null once the client has let go of it, which makes
// every late callback of an abandoned context a no-op. Replies are copied into
// redis::Reply inside the callback (docs/style.md rule 7). No exception leaves a
// trampoline (docs/style.md rule 6).
//
// The event hooks are hiredis's adapters/libuv.h with one fix. In 0.14.1 its poll callback
// returns when libuv reports an error, but libuv reports POLLERR (a refused connect, a
// reset) exactly that way (status UV_EBADF, no events, the handle stopped), so hiredis
// never learned that a connect had failed and the connection hung until a timeout.
// hiredis 1.0 fixed it by handing hiredis the events it asked for; so does UvEvents below.
#include "runtime/redis/redis_client.h"

// hiredis's headers are C: keep their definitions out of our namespace.
extern "C" {
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
}

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>

#include "runtime/core/clock.h"
#include "runtime/core/log.h"
#include "runtime/redis/hiredis_reply.h"

namespace ephemera::redis {
namespace {

void* IdToPrivdata(uint64_t id) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(id));
}

// The libuv side of one hiredis context (adapters/libuv.h, fixed as the file comment
// says). hiredis calls the hooks to say which events it wants; libuv calls OnPoll. The
// poll handle is closed exactly once, from Cleanup (hiredis calls it when it frees the
// context), and the struct is freed in the close callback (docs/style.md rule 3).
struct UvEvents {
  redisAsyncContext* context = nullptr;  // null once hiredis has let go of it
  uv_poll_t handle;
  int events = 0;

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* p = static_cast<UvEvents*>(h->data);
    // On an error libuv gives no events and stops the handle: hand hiredis the events it
    // asked for, so its read or write meets the socket's error and disconnects.
    int ev = status != 0 ? p->events : events;
    if (p->context != nullptr && (ev & UV_READABLE)) redisAsyncHandleRead(p->context);
    if (p->context != nullptr && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
    if (status != 0 && p->context != nullptr && p->events != 0) {
      uv_poll_start(&p->handle, p->events, &UvEvents::OnPoll);  // libuv stopped it
    }
  }
  // hiredis asks for reads again after every write: only a real change reaches libuv, whose
  // uv_poll_start takes the descriptor out of epoll and puts it back (three system calls).
  void Update(int add, int remove) {
    int next = (events | add) & ~remove;
    if (next == events && uv_is_active(reinterpret_cast<uv_handle_t*>(&handle)) == (next != 0)) {
      return;
    }
    events = next;
    if (events != 0) {
      uv_poll_start(&handle, events, &UvEvents::OnPoll);
    } else {
      uv_poll_stop(&handle);
    }
  }
  static void AddRead(void* d) { static_cast<UvEvents*>(d)->Update(UV_READABLE, 0); }
  static void DelRead(void* d) { static_cast<UvEvents*>(d)->Update(0, UV_READABLE); }
  static void AddWrite(void* d) { static_cast<UvEvents*>(d)->Update(UV_WRITABLE, 0); }
  static void DelWrite(void* d) { static_cast<UvEvents*>(d)->Update(0, UV_WRITABLE); }
  static void Cleanup(void* d) {
    auto* p = static_cast<UvEvents*>(d);
    p->context = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
             [](uv_handle_t* h) { delete static_cast<UvEvents*>(h->data); });
  }

  // REDIS_OK, or REDIS_ERR with nothing attached (a handle whose init failed is not closed).
  static int Attach(redisAsyncContext* ac, uv_loop_t* loop) {
    if (ac->ev.data != nullptr) return REDIS_ERR;
    auto* p = new UvEvents;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
      delete p;
      return REDIS_ERR;
    }
    p->context = ac;
    p->handle.data = p;
    ac->ev.data = p;
    ac->ev.addRead = &UvEvents::AddRead;
    ac->ev.delRead = &UvEvents::DelRead;
    ac->ev.addWrite = &UvEvents::AddWrite;
    ac->ev.delWrite = &UvEvents::DelWrite;
    ac->ev.cleanup = &UvEvents::Cleanup;
    return REDIS_OK;
  }
};

}  // namespace

// The C entry points. hiredis calls them; they find the Client through ac->data.
struct Trampolines {
  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata) noexcept {
    auto* client = static_cast<Client*>(ac->data);
    if (client == nullptr) return;  // a context the client has let go of
    uint64_t id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(privdata));
    try {
      if (reply == nullptr) {
        client->OnReply(
            id,
            Timeout("the connection to Redis at " + client->url() + " was lost before it answered"),
            Reply{});
        return;
      }
      Reply copy = CopyHiredisReply<Reply>(static_cast<const redisReply*>(reply));
      Status s =
          copy.is_error()
              ? Internal("Redis at " + client->url() + " answered with an error: " + copy.str)
              : Status::Ok();
      client->OnReply(id, std::move(s), std::move(copy));  // may destroy the client
    } catch (const std::exception& e) {
      LOG_ERROR("redis", "a reply callback threw: %s", e.what());
    } catch (...) {
      LOG_ERROR("redis", "a reply callback threw");
    }
  }

  static void OnConnect(const redisAsyncContext* ac, int status) noexcept {
    auto* client = static_cast<Client*>(ac->data);
    if (client == nullptr) return;
    try {
      client->OnConnected(const_cast<redisAsyncContext*>(ac), status == REDIS_OK,
                          ac->errstr != nullptr ? ac->errstr : "");
    } catch (...) {
      LOG_ERROR("redis", "the connect callback threw");
    }
  }

  static void OnDisconnect(const redisAsyncContext* ac, int /*status*/) noexcept {
    auto* client = static_cast<Client*>(ac->data);
    if (client == nullptr) return;
    try {
      client->OnDisconnected(const_cast<redisAsyncContext*>(ac),
                             ac->err != 0 && ac->errstr != nullptr ? ac->errstr : "closed");
    } catch (...) {
      LOG_ERROR("redis", "the disconnect callback threw");
    }
  }
};

std::optional<long long> Reply::Integer() const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString || str.empty() || str.size() > 20) return std::nullopt;
  char* end = nullptr;
  long long v = std::strtoll(str.c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

std::string Reply::Describe() const {
  switch (type) {
    case Type::kNil: return "(nil)";
    case Type::kString: return "\"" + str.substr(0, 200) + (str.size() > 200 ? "...\"" : "\"");
    case Type::kStatus: return str;
    case Type::kInteger: return std::to_string(integer);
    case Type::kError: return "(error) " + str;
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements[i].Describe();
      }
      return out + "]";
    }
  }
  return "?";
}

Client::Client(uv_loop_t* loop, ClientOptions options)
    : loop_(loop),
      options_(std::move(options)),
      url_text_(options_.url.Redacted()),
      backoff_ms_(options_.backoff_initial_ms),
      reconnect_timer_(loop),
      timeout_timer_(loop),
      heartbeat_timer_(loop),
      defer_timer_(loop),
      alive_(std::make_shared<bool>(true)) {
  last_error_ = "not connected yet";
}

Client::~Client() {
  *alive_ = false;
  if (ctx_ != nullptr) {
    // Outside any hiredis callback of ours (user callbacks run from reply callbacks, where
    // hiredis defers the free itself), so the context goes now; its pending callbacks find
    // ac->data null and do nothing.
    redisAsyncContext* ac = std::exchange(ctx_, nullptr);
    ac->data = nullptr;
    redisAsyncFree(ac);
  }
}

void Client::Connect() {
  if (state_ != State::kIdle) return;
  StartAttempt();
}

// ---- Connecting: connect, then AUTH / SELECT / CLIENT SETNAME / PING, pipelined ----

void Client::StartAttempt() {
  ++stats_.attempts;
  ++attempt_;
  state_ = State::kConnecting;
  const RedisUrl& u = options_.url;
  redisAsyncContext* ac = u.unix_path.empty() ? redisAsyncConnect(u.host.c_str(), u.port)
                                              : redisAsyncConnectUnix(u.unix_path.c_str());
  if (ac == nullptr) {
    FailAttempt("hiredis could not allocate a connection");
    return;
  }
  if (ac->err != 0) {
    std::string why = ac->errstr;
    redisAsyncFree(ac);
    FailAttempt(why);
    return;
  }
  if (UvEvents::Attach(ac, loop_) != REDIS_OK) {
    redisAsyncFree(ac);
    FailAttempt("could not watch the socket with libuv");
    return;
  }
  ac->data = this;
  redisAsyncSetConnectCallback(ac, &Trampolines::OnConnect);
  redisAsyncSetDisconnectCallback(ac, &Trampolines::OnDisconnect);
  ctx_ = ac;

  // hiredis queues these and writes them once the socket connects.
  std::vector<std::vector<std::string>> steps;
  if (!u.password.empty()) {
    if (u.user.empty()) {
      steps.push_back({"AUTH", u.password});
    } else {
      steps.push_back({"AUTH", u.user, u.password});
    }
  }
  if (u.db != 0) steps.push_back({"SELECT", std::to_string(u.db)});
  if (!options_.name.empty()) steps.push_back({"CLIENT", "SETNAME", options_.name});
  steps.push_back({"PING"});
  handshake_error_ = Status::Ok();
  handshake_left_ = static_cast<int>(steps.size());
  for (auto& argv : steps) {
    std::string what = argv[0];
    uint64_t attempt = attempt_;
    Callback cb = [this, attempt, what](Status s, Reply) {
      if (attempt == attempt_) OnHandshakeStep(what, s);
    };
    if (Send(std::move(argv), cb, options_.command_timeout_ms) == 0) {
      Drop(Unavailable("hiredis refused to queue " + what), false);
      return;
    }
  }
}

void Client::OnHandshakeStep(const std::string& what, const Status& s) {
  if (state_ != State::kConnecting) return;
  if (!s.ok() && handshake_error_.ok()) {
    handshake_error_ = Unavailable(what + " failed: " + s.message());
  }
  if (--handshake_left_ > 0) return;
  if (!handshake_error_.ok()) {
    Drop(handshake_error_, false);
    return;
  }
  BecomeReady();
}

void Client::OnConnected(redisAsyncContext* ac, bool ok, const std::string& error) {
  if (ac != ctx_) return;
  if (!ok) Drop(Unavailable("cannot connect: " + error), true);
  // When ok, readiness waits for the PING of the handshake.
}

void Client::OnDisconnected(redisAsyncContext* ac, const std::string& error) {
  if (ac != ctx_) return;
  Drop(Unavailable("connection lost: " + error), true);
}

void Client::BecomeReady() {
  state_ = State::kReady;
  backoff_ms_ = options_.backoff_initial_ms;
  ++stats_.connects;
  LOG_INFO("redis", "%s Redis at %s%s%s", stats_.connects == 1 ? "connected to" : "reconnected to",
           url_text_.c_str(), options_.name.empty() ? "" : " as ", options_.name.c_str());
  last_error_.clear();
  outage_logged_ = false;
  if (options_.heartbeat_ms > 0)
    heartbeat_timer_.Start(options_.heartbeat_ms, [this] { Heartbeat(); });
  if (listener_) {
    Defer([this] {
      if (listener_ && state_ == State::kReady) listener_(true, Status::Ok());
    });
  }
}

void Client::FailAttempt(const std::string& why) {
  Drop(Unavailable("cannot connect: " + why), false);
}

// ---- Losing a connection ----

void Client::Drop(const Status& why, bool inside_hiredis_teardown) {
  bool was_ready = state_ == State::kReady;
  if (state_ == State::kConnecting) ++stats_.failed_attempts;
  if (redisAsyncContext* ac = std::exchange(ctx_, nullptr); ac != nullptr) {
    ac->data = nullptr;                                // its remaining callbacks become no-ops
    if (!inside_hiredis_teardown) redisAsyncFree(ac);  // deferred by hiredis inside a reply
  }
  heartbeat_timer_.Stop();
  heartbeat_outstanding_ = false;
  state_ = State::kBackoff;
  last_error_ = why.message();
  // Every command in flight was sent: whether Redis ran it is unknown (kTimeout).
  std::unordered_map<uint64_t, Pending> failed;
  failed.swap(pending_);
  ArmTimeouts();
  Status lost = Timeout("the connection to Redis at " + url_text_ +
                        " was lost before it answered (" + why.message() + ")");
  for (auto& [id, p] : failed) {
    Defer([cb = std::move(p.cb), lost] { cb(lost, Reply{}); });
  }
  if (was_ready) {
    ++stats_.disconnects;
    LOG_WARN("redis", "Redis at %s: %s; reconnecting (backoff from %llu ms up to %llu ms)",
             url_text_.c_str(), why.message().c_str(),
             static_cast<unsigned long long>(options_.backoff_initial_ms),
             static_cast<unsigned long long>(options_.backoff_max_ms));
    outage_logged_ = true;
    if (listener_) {
      Defer([this, why] {
        if (listener_) listener_(false, why);
      });
    }
  } else if (!outage_logged_) {
    LOG_WARN("redis", "Redis at %s is unavailable: %s; retrying with backoff up to %llu ms",
             url_text_.c_str(), why.message().c_str(),
             static_cast<unsigned long long>(options_.backoff_max_ms));
    outage_logged_ = true;
  } else {
    LOG_DEBUG("redis", "Redis at %s: attempt failed: %s", url_text_.c_str(), why.message().c_str());
  }
  ScheduleReconnect();
}

void Client::ScheduleReconnect() {
  uint64_t wait = backoff_ms_;
  next_attempt_ms_ = MonotonicMs() + static_cast<double>(wait);
  backoff_ms_ = std::min(backoff_ms_ * 2, options_.backoff_max_ms);
  reconnect_timer_.Start(wait, [this] { StartAttempt(); });
}

// ---- Commands ----

Status Client::NotReady(const std::string& command) const {
  std::string when;
  if (state_ == State::kBackoff) {
    double left = next_attempt_ms_ - MonotonicMs();
    when = "; next connection attempt in " +
           std::to_string(left > 0 ? static_cast<long>(left) : 0) + " ms";
  } else if (state_ == State::kConnecting) {
    when = "; connecting";
  } else if (state_ == State::kIdle) {
    when = "; Connect() was not called";
  }
  return Unavailable("Redis at " + url_text_ + " is unavailable (" + last_error_ + when +
                     "): " + command + " not sent");
}

void Client::Command(std::vector<std::string> argv, Callback cb, uint64_t timeout_ms) {
  std::string name = argv.empty() ? "(empty command)" : argv[0];
  if (argv.empty()) {
    Defer([cb = std::move(cb)] { cb(InvalidArgument("empty Redis command"), Reply{}); });
    return;
  }
  if (state_ != State::kReady || ctx_ == nullptr) {
    ++stats_.unavailable;
    Defer([cb = std::move(cb), s = NotReady(name)] { cb(s, Reply{}); });
    return;
  }
  uint64_t id =
      Send(std::move(argv), cb, timeout_ms == 0 ? options_.command_timeout_ms : timeout_ms);
  if (id == 0) {
    ++stats_.unavailable;
    Defer([cb = std::move(cb), s = NotReady(name)] { cb(s, Reply{}); });
  }
}

uint64_t Client::Send(std::vector<std::string> argv, Callback& cb, uint64_t timeout_ms) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  uint64_t id = next_id_++;
  // Never runs the callback from inside the call: it only appends to the output buffer.
  if (redisAsyncCommandArgv(ctx_, &Trampolines::OnReply, IdToPrivdata(id),
                            static_cast<int>(args.size()), args.data(), lens.data()) != REDIS_OK) {
    return 0;
  }
  ++stats_.commands;
  double deadline = MonotonicMs() + static_cast<double>(timeout_ms);
  pending_.emplace(id, Pending{std::move(cb), deadline, argv[0]});
  // A timer already due no later than this deadline covers it: its check re-arms for the
  // rest, so a busy connection does not rescan every pending command per command.
  if (!(timeout_timer_.active() && armed_deadline_ != 0 && armed_deadline_ <= deadline)) {
    ArmTimeouts();
  }
  return id;
}

void Client::OnReply(uint64_t id, Status s, Reply r) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // timed out already
  Callback cb = std::move(it->second.cb);
  pending_.erase(it);
  if (r.is_error()) ++stats_.error_replies;
  if (s.code() == StatusCode::kTimeout) {
    // A lost connection (NULL reply): hiredis is tearing the context down around us, so
    // the failure is delivered from a later loop turn.
    Defer([cb = std::move(cb), s = std::move(s)] { cb(s, Reply{}); });
    return;
  }
  cb(std::move(s), std::move(r));  // may destroy this client: nothing after it
}

// ---- Timeouts, in two steps: the deadline passes (timer), then the loop polls for I/O
// once more (a 1 ms timer runs after that poll), then what is still unanswered fails. ----

void Client::ArmTimeouts() {
  if (pending_.empty()) {
    timeout_timer_.Stop();
    armed_deadline_ = 0;
    return;
  }
  double earliest = 0;
  for (const auto& [id, p] : pending_) {
    if (earliest == 0 || p.deadline_ms < earliest) earliest = p.deadline_ms;
  }
  if (timeout_timer_.active() && armed_deadline_ != 0 && armed_deadline_ <= earliest) return;
  armed_deadline_ = earliest;
  double wait = earliest - MonotonicMs();
  timeout_timer_.Start(wait > 0 ? static_cast<uint64_t>(wait) + 1 : 0, [this] {
    // libuv runs a timer started with 0 inside a timer callback in the same pass, before
    // any I/O; 1 ms puts the check after the next poll.
    timeout_timer_.Start(1, [this] { CheckTimeouts(); });
  });
}

void Client::CheckTimeouts() {
  armed_deadline_ = 0;
  double now = MonotonicMs();
  std::string expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline_ms > now) {
      ++it;
      continue;
    }
    ++stats_.timeouts;
    expired = it->second.command;
    Status s =
        Timeout("Redis at " + url_text_ + " did not answer " + it->second.command + " in time");
    Defer([cb = std::move(it->second.cb), s] { cb(s, Reply{}); });
    it = pending_.erase(it);
  }
  if (expired.empty()) {
    ArmTimeouts();
    return;
  }
  // The replies still due on this connection can no longer be matched with confidence
  // that they will come: start afresh.
  Drop(Unavailable("no answer to " + expired + " within " +
                   std::to_string(options_.command_timeout_ms) + " ms"),
       false);
}

void Client::Heartbeat() {
  if (state_ != State::kReady) return;
  if (!heartbeat_outstanding_) {
    heartbeat_outstanding_ = true;
    uint64_t attempt = attempt_;
    Callback cb = [this, attempt](Status, Reply) {
      if (attempt == attempt_) heartbeat_outstanding_ = false;
    };
    if (Send({"PING"}, cb, options_.command_timeout_ms) == 0) heartbeat_outstanding_ = false;
  }
  heartbeat_timer_.Start(options_.heartbeat_ms, [this] { Heartbeat(); });
}

// ---- Deferred callbacks: failures known without an answer run on a later loop turn ----

void Client::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (!defer_timer_.active()) defer_timer_.Start(0, [this] { RunDeferred(); });
}

void Client::RunDeferred() {
  std::vector<std::function<void()>> batch;
  batch.swap(deferred_);
  std::shared_ptr<bool> alive = alive_;
  for (auto& fn : batch) {
    if (!*alive) return;  // a callback destroyed the client: drop the rest
    try {
      fn();
    } catch (const std::exception& e) {
      LOG_ERROR("redis", "a callback threw: %s", e.what());
    } catch (...) {
      LOG_ERROR("redis", "a callback threw");
    }
  }
}

}  // namespace ephemera::redis
