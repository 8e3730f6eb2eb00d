#include "runtime/sandbox/forwarder.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace ephemera::sandbox {
namespace {

constexpr size_t kMaxQueued = 1 << 20;

struct WriteReq {
  uv_write_t req;
  std::unique_ptr<char[]> data;
};

}  // namespace

// The two ends of one forwarded connection. It frees itself once both handles are
// closed (docs/style.md rule 3); the owner only forgets it.
struct Forwarder::Link {
  Forwarder* owner;
  uv_pipe_t inside{};  // the environment's end (the unix socket)
  uv_tcp_t outside{};  // the host service
  uv_connect_t connect{};
  int open_handles = 0;
  bool closing = false;

  uv_stream_t* in() { return reinterpret_cast<uv_stream_t*>(&inside); }
  uv_stream_t* out() { return reinterpret_cast<uv_stream_t*>(&outside); }

  void Close() {
    if (closing) return;
    closing = true;
    if (owner != nullptr) owner->Forget(this);
    owner = nullptr;
    auto closed = [](uv_handle_t* h) {
      auto* self = static_cast<Link*>(h->data);
      if (--self->open_handles == 0) delete self;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&inside), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&outside), closed);
  }

  // Copies what `from` read to `to`.
  static void OnRead(uv_stream_t* from, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<Link*>(from->data);
    std::unique_ptr<char[]> data(buf->base);
    if (n == 0) return;
    if (n < 0 || self->closing) {
      self->Close();
      return;
    }
    uv_stream_t* to = from == self->in() ? self->out() : self->in();
    auto* w = new WriteReq;
    w->data = std::move(data);
    w->req.data = self;
    uv_buf_t out = uv_buf_init(w->data.get(), static_cast<unsigned>(n));
    if (uv_write(&w->req, to, &out, 1, OnWritten) != 0) {
      delete w;
      self->Close();
      return;
    }
    if (to->write_queue_size > kMaxQueued) uv_read_stop(from);
  }

  static void OnWritten(uv_write_t* req, int status) {
    std::unique_ptr<WriteReq> w(reinterpret_cast<WriteReq*>(req));
    auto* self = static_cast<Link*>(req->data);
    if (self->closing) return;
    if (status != 0) {
      self->Close();
      return;
    }
    uv_stream_t* to = req->handle;
    uv_stream_t* from = to == self->in() ? self->out() : self->in();
    if (to->write_queue_size <= kMaxQueued) uv_read_start(from, Alloc, OnRead);
  }

  static void Alloc(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
    size_t size = suggested < 65536 ? suggested : 65536;
    buf->base = new char[size];
    buf->len = size;
  }
};

Forwarder::Forwarder(uv_loop_t* loop) : loop_(loop) {}

Forwarder::~Forwarder() {
  auto links = links_;
  for (Link* l : links) l->Close();
  if (server_ != nullptr) {
    server_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(server_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    ::unlink(path_.c_str());
  }
}

Status Forwarder::Listen(const std::string& socket_path, const std::string& host, int port) {
  if (uv_ip4_addr(host.c_str(), port, &target_) != 0) {
    return InvalidArgument("cannot forward to " + host + ":" + std::to_string(port) +
                           ": not an IPv4 address and port");
  }
  auto* server = new uv_pipe_t;
  if (int rc = uv_pipe_init(loop_, server, 0); rc != 0) {
    delete server;
    return Internal(std::string("uv_pipe_init: ") + uv_strerror(rc));
  }
  server_ = server;
  server_->data = this;
  path_ = socket_path;
  ::unlink(path_.c_str());
  if (int rc = uv_pipe_bind(server_, path_.c_str()); rc != 0) {
    return Internal("cannot listen on " + path_ + ": " + uv_strerror(rc));
  }
  ::chmod(path_.c_str(), 0666);  // the function's user may not be root
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 64, OnConnection); rc != 0) {
    return Internal("cannot listen on " + path_ + ": " + uv_strerror(rc));
  }
  return Status::Ok();
}

void Forwarder::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<Forwarder*>(server->data);
  if (self == nullptr || status != 0) return;
  auto* link = new Link;
  link->owner = self;
  uv_pipe_init(self->loop_, &link->inside, 0);
  uv_tcp_init(self->loop_, &link->outside);
  link->inside.data = link;
  link->outside.data = link;
  link->open_handles = 2;
  self->links_.insert(link);
  if (uv_accept(server, link->in()) != 0) {
    link->Close();
    return;
  }
  link->connect.data = link;
  int rc = uv_tcp_connect(&link->connect, &link->outside,
                          reinterpret_cast<const sockaddr*>(&self->target_),
                          [](uv_connect_t* req, int status) {
                            auto* link = static_cast<Link*>(req->data);
                            if (link->closing) return;
                            if (status != 0) {
                              link->Close();  // the service is not there: the client sees EOF
                              return;
                            }
                            uv_read_start(link->in(), Link::Alloc, Link::OnRead);
                            uv_read_start(link->out(), Link::Alloc, Link::OnRead);
                          });
  if (rc != 0) link->Close();
}

}  // namespace ephemera::sandbox
