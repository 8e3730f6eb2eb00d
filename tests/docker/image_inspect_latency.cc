// tests/docker/image_inspect_latency.cc: what one InspectImage costs against the real
// engine when it is not cached, next to a cache hit: the price the image cache (kept
// honest by scheduler::ImageWatcher) saves on every cold start.
//
// Usage: image_inspect_latency [calls=200] [image=ephemera/echo:latest]
// One warm-up call (the keep-alive connection), then `calls` sequential inspections, each
// after ForgetImage (so each is one GET /images/{name}/json), then `calls` cache hits.
// Prints p50, p90, p99 and max in milliseconds. Not a test: a measuring tool.
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/docker/docker_client.h"

namespace {

using ephemera::MonotonicMs;
using ephemera::Status;
using namespace ephemera::docker;

// Runs the loop until `flag` is set; a prepare handle stops it before it would block in
// poll, so the next unrelated wake-up is not measured.
void RunUntil(uv_loop_t* loop, const bool& flag) {
  uv_prepare_t check;
  uv_prepare_init(loop, &check);
  check.data = const_cast<bool*>(&flag);
  uv_prepare_start(&check, [](uv_prepare_t* p) {
    if (*static_cast<bool*>(p->data)) uv_stop(p->loop);
  });
  while (!flag) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

double Percentile(const std::vector<double>& sorted, double p) {
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

void Print(const char* name, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  std::printf("%-22s p50 %6.3f ms   p90 %6.3f   p99 %6.3f   max %6.3f   (n=%zu)\n", name,
              Percentile(ms, 50), Percentile(ms, 90), Percentile(ms, 99), ms.back(), ms.size());
}

// One InspectImage, timed from the call to its callback; false on an error.
bool Inspect(uv_loop_t* loop, DockerClient& client, const std::string& image, double* ms) {
  bool done = false;
  Status status;
  double t0 = MonotonicMs();
  client.InspectImage(image, [&](Status s, const ImageConfig&) {
    status = s;
    done = true;
  });
  RunUntil(loop, done);
  *ms = MonotonicMs() - t0;
  if (!status.ok()) std::fprintf(stderr, "%s\n", status.message().c_str());
  return status.ok();
}

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string image = argc > 2 ? argv[2] : "ephemera/echo:latest";
  if (calls < 1) calls = 1;
  uv_loop_t loop;
  uv_loop_init(&loop);
  Status error;
  auto client = DockerClient::Create(&loop, DockerClient::DefaultSocketPath(), &error);
  if (!client) {
    std::fprintf(stderr, "%s\n", error.message().c_str());
    return 1;
  }
  double ms = 0;
  if (!Inspect(&loop, *client, image, &ms)) return 1;  // warm-up
  std::vector<double> uncached, cached;
  for (int i = 0; i < calls; ++i) {
    client->ForgetImage(image);
    if (!Inspect(&loop, *client, image, &ms)) return 1;
    uncached.push_back(ms);
  }
  for (int i = 0; i < calls; ++i) {
    if (!Inspect(&loop, *client, image, &ms)) return 1;
    cached.push_back(ms);
  }
  std::printf("InspectImage %s, %d calls each\n", image.c_str(), calls);
  Print("uncached (engine)", uncached);
  Print("cached (hit)", cached);
  std::printf("inspections sent: %llu, connections opened: %llu\n",
              static_cast<unsigned long long>(client->image_inspections_sent()),
              static_cast<unsigned long long>(client->connections_opened()));
  client.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 2;
}
