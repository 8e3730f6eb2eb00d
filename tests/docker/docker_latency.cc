// tests/docker/docker_latency.cc: how long create and start take over DockerClient,
// next to `docker run --rm` of the same image (the CLI floor).
//
// Usage: docker_latency [runs=10] [image=ephemera-test/busybox:latest]
// Each run, as the cold path does it: create (host network, `/bin/true`), then wait and
// attach registered (both in parallel), start, exit, remove.
// Prints the median and min/max of each phase in milliseconds. Not a test: it blocks in
// waitpid while timing the CLI, which is fine for a measuring tool and never done on the
// daemon's loop.
#include <spawn.h>
#include <sys/wait.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/docker/docker_client.h"

extern char** environ;

namespace {

using ephemera::MonotonicMs;
using ephemera::Status;
using namespace ephemera::docker;

struct Series {
  explicit Series(const char* n) : name(n) {}
  const char* name;
  std::vector<double> ms;
  void Print() const {
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    if (v.empty()) return;
    std::printf("%-26s median %7.1f ms   min %7.1f   max %7.1f   (n=%zu)\n", name, v[v.size() / 2],
                v.front(), v.back(), v.size());
  }
};

// Runs the loop until `flag` is set (the client never blocks, so this is the only wait).
// A prepare handle stops the loop before it would block in poll once the flag is set:
// UV_RUN_ONCE alone would go on to poll after a timer callback set it, and the wait for
// the next event (curl's 2 s connect-timeout timer, say) would be measured too.
void RunUntil(uv_loop_t* loop, const bool& flag) {
  uv_prepare_t check;
  uv_prepare_init(loop, &check);
  check.data = const_cast<bool*>(&flag);
  uv_prepare_start(&check, [](uv_prepare_t* p) {
    if (*static_cast<bool*>(p->data)) uv_stop(p->loop);
  });
  while (!flag) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // the close callback of `check`, which lives on this stack
}

bool RunOnce(uv_loop_t* loop, DockerClient& client, const std::string& image, Series& create,
             Series& registered, Series& start, Series& to_exit, Series& remove) {
  ContainerSpec spec;
  spec.image = image;
  spec.cmd = {"/bin/true"};
  // (insert rather than operator[]= "1": GCC 12's -Wrestrict false positive, PR105329)
  spec.labels.emplace("ephemera-test.latency", std::string(1, '1'));
  bool done = false;
  Status status;
  std::string id;
  double t0 = MonotonicMs();
  client.CreateContainer(spec, [&](Status s, std::string got) {
    status = s;
    id = got;
    done = true;
  });
  RunUntil(loop, done);
  if (!status.ok()) {
    std::fprintf(stderr, "create: %s\n", status.message().c_str());
    return false;
  }
  create.ms.push_back(MonotonicMs() - t0);

  bool waiting = false, exited = false, attached = false, ended = false;
  double t_reg = MonotonicMs();
  client.WaitContainer(
      id, [&](Status) { waiting = true; }, [&](Status, int) { exited = true; });
  client.Attach(
      id, [&](Status) { attached = true; }, [](StreamType, std::string_view) {},
      [&](Status) { ended = true; });
  RunUntil(loop, waiting);
  RunUntil(loop, attached);
  registered.ms.push_back(MonotonicMs() - t_reg);

  done = false;
  double t1 = MonotonicMs();
  client.StartContainer(id, [&](Status s) {
    status = s;
    done = true;
  });
  RunUntil(loop, done);
  start.ms.push_back(MonotonicMs() - t1);
  RunUntil(loop, exited);
  to_exit.ms.push_back(MonotonicMs() - t0);
  RunUntil(loop, ended);

  done = false;
  double t2 = MonotonicMs();
  client.RemoveContainer(id, [&](Status) { done = true; });
  RunUntil(loop, done);
  remove.ms.push_back(MonotonicMs() - t2);
  return status.ok();
}

double TimeDockerRun(const std::string& image) {
  std::vector<std::string> args = {"docker", "run", "--rm",     "--network",
                                   "host",   image, "/bin/true"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  double t0 = MonotonicMs();
  pid_t pid;
  if (posix_spawnp(&pid, "docker", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  return MonotonicMs() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 10;
  std::string image = argc > 2 ? argv[2] : "ephemera-test/busybox:latest";
  uv_loop_t loop;
  uv_loop_init(&loop);
  Status error;
  auto client = DockerClient::Create(&loop, DockerClient::DefaultSocketPath(), &error);
  if (!client) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    return 1;
  }
  Series create{"client create"}, registered{"client wait+attach ready"},
      start{"client start (returns)"}, to_exit{"client create..exit"}, remove{"client remove"},
      cli{"docker run --rm (CLI)"};
  // One warm-up run so the connection and the engine's caches are warm for both.
  Series ignore{"warm-up"};
  if (!RunOnce(&loop, *client, image, ignore, ignore, ignore, ignore, ignore)) return 1;
  for (int i = 0; i < runs; ++i) {
    if (!RunOnce(&loop, *client, image, create, registered, start, to_exit, remove)) return 1;
  }
  TimeDockerRun(image);
  for (int i = 0; i < runs; ++i) cli.ms.push_back(TimeDockerRun(image));
  for (const Series* s : {&create, &registered, &start, &to_exit, &remove, &cli}) s->Print();
  std::printf("connections opened by the client: %llu\n",
              static_cast<unsigned long long>(client->connections_opened()));
  client.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 2;
}
