// A figure, not a timing assertion: the latency of a simple GET through one
// keep-alive connection, unloaded and then with 1,000 idle keep-alive
// connections held open to the same server, plus descriptors and RSS before
// and after. It prints the numbers; what it asserts is correctness (every
// request answered, every connection counted, every descriptor released).
//
// The server's loop runs on a thread the test owns; the test thread is the
// client, with plain blocking sockets, so each measured request crosses a real
// wake-up of the loop. Nothing sleeps.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/http/http_server.h"
#include "tests/http/http_test_support.h"

namespace ephemera::http {
namespace {

constexpr int kIdleConnections = 1000;
constexpr int kRequests = 2000;

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kb = 0;
      in >> kb;
      return kb;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One GET on a blocking keep-alive connection; true if a whole 200 came back.
bool Get(int fd, std::string* scratch) {
  static const char kRequest[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
  if (::write(fd, kRequest, sizeof kRequest - 1) != static_cast<ssize_t>(sizeof kRequest - 1)) {
    return false;
  }
  scratch->clear();
  char buf[1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    scratch->append(buf, static_cast<size_t>(n));
    auto rs = testing::ParseResponses(*scratch);
    if (!rs.empty()) return rs.size() == 1 && rs[0].status == 200 && rs[0].body == "pong";
  }
}

// The CPU every thread of the measurement runs on. On one CPU a request costs
// the same on both servers (two context switches); across CPUs it depends on
// where the scheduler put each loop thread, which differs between the two by
// several times and would swamp what is measured.
int Cpu() {
  static const int cpu = [] {
    int c = sched_getcpu();
    return c < 0 ? 0 : c;
  }();
  return cpu;
}

void PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// p50 and p99 of samples in microseconds.
struct Latency {
  double p50_us = 0, p99_us = 0;
};

Latency Summarise(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

// One server on a loop of its own, run by a thread of its own.
class ServedLoop {
 public:
  ServedLoop() {
    EXPECT_EQ(uv_loop_init(&loop_), 0);
    {
      // Opens libuv's EMFILE reserve descriptor now, not inside a measurement.
      HttpServer warm_up(&loop_, testing::EchoPath, {});
      EXPECT_TRUE(warm_up.Listen("127.0.0.1", 0).ok());
    }
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

  void Start() {
    server_ = std::make_unique<HttpServer>(
        &loop_, [](std::shared_ptr<HttpExchange> ex) { ex->Reply(HttpResponse(200, "pong")); },
        HttpServer::Options{});
    ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
    ASSERT_EQ(uv_async_init(&loop_, &stop_, [](uv_async_t* a) { uv_stop(a->loop); }), 0);
    thread_ = std::thread([this] {
      PinToCpu(Cpu());
      uv_run(&loop_, UV_RUN_DEFAULT);
    });
  }

  // Stops the loop thread: the server is the calling thread's from then on.
  void Stop() {
    uv_async_send(&stop_);
    thread_.join();
  }

  // After the clients closed: runs the loop here until every connection is
  // gone, destroys the server and closes the loop. Returns uv_loop_close().
  int Finish() {
    bool timed_out = false;
    uv_timer_t watchdog;
    EXPECT_EQ(uv_timer_init(&loop_, &watchdog), 0);
    watchdog.data = &timed_out;
    uv_timer_start(
        &watchdog, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 10000, 0);
    while (server_->connection_count() > 0 && !timed_out) uv_run(&loop_, UV_RUN_ONCE);
    EXPECT_FALSE(timed_out);
    server_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_), nullptr);
    for (int i = 0; i < 100 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) {
    }
    return uv_loop_close(&loop_);
  }

  HttpServer& server() { return *server_; }
  int port() const { return server_->port(); }

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
};

TEST(HttpIdleLoad, LatencyWithAThousandIdleKeepAliveConnections) {
  // Two servers, each on its own loop and thread: `quiet` has only its probe
  // connection, `busy` also holds the idle ones. The probes alternate in
  // blocks (A B B A), so noise from the rest of the machine lands on both.
  PinToCpu(Cpu());
  {
    // libuv's first loop opens a process-wide pipe (for signals) that is never
    // closed: let that happen before the baseline.
    uv_loop_t first;
    ASSERT_EQ(uv_loop_init(&first), 0);
    ASSERT_EQ(uv_loop_close(&first), 0);
  }
  const int fds_before = testing::CountOpenFds();  // before the loops exist
  auto quiet_ptr = std::make_unique<ServedLoop>(), busy_ptr = std::make_unique<ServedLoop>();
  ServedLoop &quiet = *quiet_ptr, &busy = *busy_ptr;
  const int fds_loops = testing::CountOpenFds();
  const long rss_before = RssKb();
  quiet.Start();
  busy.Start();

  int quiet_probe = ConnectTo(quiet.port());
  int busy_probe = ConnectTo(busy.port());
  ASSERT_GE(quiet_probe, 0);
  ASSERT_GE(busy_probe, 0);
  std::string scratch;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(Get(quiet_probe, &scratch));
    ASSERT_TRUE(Get(busy_probe, &scratch));
  }
  const int fds_probes = testing::CountOpenFds();
  const long rss_probes = RssKb();

  std::vector<int> idle;
  int idle_failures = 0;
  for (int i = 0; i < kIdleConnections; ++i) {
    int fd = ConnectTo(busy.port());
    if (fd < 0 || !Get(fd, &scratch)) ++idle_failures;  // each has served one request
    if (fd >= 0) idle.push_back(fd);
  }
  const int fds_loaded = testing::CountOpenFds();
  const long rss_loaded = RssKb();

  std::vector<double> quiet_us, busy_us;
  int failures = 0;
  auto block = [&](int fd, std::vector<double>* out) {
    for (int i = 0; i < 100; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      if (!Get(fd, &scratch)) ++failures;
      auto t1 = std::chrono::steady_clock::now();
      out->push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  };
  while (static_cast<int>(quiet_us.size()) < kRequests) {
    block(quiet_probe, &quiet_us);
    block(busy_probe, &busy_us);
    block(busy_probe, &busy_us);
    block(quiet_probe, &quiet_us);
  }
  Latency unloaded = Summarise(quiet_us), loaded = Summarise(busy_us);

  quiet.Stop();
  busy.Stop();
  EXPECT_EQ(idle_failures, 0);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(quiet.server().connection_count(), 1u);
  EXPECT_EQ(busy.server().connection_count(), static_cast<size_t>(kIdleConnections + 1));
  EXPECT_EQ(busy.server().stats().connections_refused, 0u);

  std::printf(
      "[ figure ] GET p50 over %d requests: unloaded %.1f us (p99 %.1f); with %d idle "
      "keep-alive connections %.1f us (p99 %.1f); ratio %.2f\n",
      kRequests, unloaded.p50_us, unloaded.p99_us, kIdleConnections, loaded.p50_us, loaded.p99_us,
      loaded.p50_us / unloaded.p50_us);
  std::printf(
      "[ figure ] fds %d -> %d with the probes -> %d with the idle connections (client and "
      "server ends are both in this process)\n",
      fds_loops, fds_probes, fds_loaded);
  std::printf(
      "[ figure ] RSS %ld kB -> %ld kB -> %ld kB: %.1f kB per idle connection (both ends, "
      "kernel socket buffers not included)\n",
      rss_before, rss_probes, rss_loaded,
      static_cast<double>(rss_loaded - rss_probes) / kIdleConnections);

  for (int fd : idle) ::close(fd);
  ::close(quiet_probe);
  ::close(busy_probe);
  EXPECT_EQ(quiet.Finish(), 0);
  EXPECT_EQ(busy.Finish(), 0);
  EXPECT_EQ(testing::CountOpenFds(), fds_before);
}

}  // namespace
}  // namespace ephemera::http
