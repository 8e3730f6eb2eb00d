// Unit tests of ImageWatcher against a fake engine on a unix socket: what each image event
// does to DockerClient's cache and to the listener, and how the watcher survives a stream
// that ends, an engine that refuses it, and an engine that goes away and comes back.
#include "runtime/scheduler/image_watcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/docker/docker_client.h"
#include "tests/docker/fake_http_server.h"
#include "tests/docker/loop_fixture.h"

namespace ephemera::scheduler {
namespace {

using docker::DockerClient;
using docker::ImageConfig;
using testing::FakeHttpServer;

// One event line as Docker 20.10 writes it.
std::string EventLine(const std::string& action, const std::string& id, const std::string& name) {
  return "{\"status\":\"" + action + "\",\"id\":\"" + id + "\",\"Type\":\"image\",\"Action\":\"" +
         action + "\",\"Actor\":{\"ID\":\"" + id + "\",\"Attributes\":{\"name\":\"" + name +
         "\"}},\"scope\":\"local\",\"time\":1796112945,\"timeNano\":1796112945894353432}\n";
}

class ImageWatcherTest : public testing::LoopTest {
 protected:
  enum class EventsMode { kStream, kRefuse };

  void SetUp() override {
    LoopTest::SetUp();
    char tmpl[] = "/tmp/ephemera-watch-XXXXXX";
    dir_ = mkdtemp(tmpl);
    socket_ = dir_ + "/engine.sock";
    StartEngine();
    client_ = DockerClient::Create(&loop_, socket_);
    ASSERT_NE(client_, nullptr);
  }

  void BeforeLoopClose() override {
    watcher_.reset();
    client_.reset();
    if (server_) server_->Close();
  }

  void TearDown() override {
    LoopTest::TearDown();
    rmdir(dir_.c_str());
  }

  // The engine at socket_: /events by events_mode_, /images/{name}/json from ids_.
  void StartEngine() {
    server_ = std::make_unique<FakeHttpServer>(
        &loop_, [this](const std::string& request) { return Answer(request); },
        FakeHttpServer::Transport::kUnixSocket, socket_);
  }

  std::vector<FakeHttpServer::Step> Answer(const std::string& request) {
    std::string line = request.substr(0, request.find("\r\n"));
    if (line.rfind("GET /v1.41/events?", 0) == 0) {
      events_requests_.push_back(line);
      delays_.push_back(watcher_ ? watcher_->retry_delay_ms() : 0);
      if (refuse_left_ > 0) {
        --refuse_left_;
        return {{FakeHttpServer::Response(500, "{\"message\":\"not now\"}")}};
      }
      return {
          {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n",
           0, false, true}};
    }
    const std::string prefix = "GET /v1.41/images/";
    size_t end = line.find("/json HTTP/1.1");
    if (line.rfind(prefix, 0) != 0 || end == std::string::npos) {
      return {{FakeHttpServer::Response(500, "{\"message\":\"unexpected\"}")}};
    }
    std::string name = line.substr(prefix.size(), end - prefix.size());
    ++asked_[name];
    auto it = ids_.find(name);
    if (it == ids_.end()) {
      return {{FakeHttpServer::Response(404, "{\"message\":\"No such image: " + name + "\"}")}};
    }
    return {{FakeHttpServer::Response(200, "{\"Id\":\"" + it->second + "\",\"Config\":{}}")}};
  }

  void MakeWatcher(ImageWatcher::Options options = {}) {
    watcher_ = std::make_unique<ImageWatcher>(
        &loop_, client_.get(), [this](const std::string& what) { changed_.push_back(what); },
        options);
  }

  // Starts the watcher and waits for the engine to confirm the stream.
  void StartAndWaitHealthy() {
    if (!watcher_) MakeWatcher();
    watcher_->Start();
    ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }));
  }

  void Push(const std::string& lines) { server_->Push(FakeHttpServer::Chunk(lines)); }

  // Pushes `lines` and waits until the listener has heard of `last`.
  void PushAndWaitFor(const std::string& lines, const std::string& last) {
    size_t before = std::count(changed_.begin(), changed_.end(), last);
    Push(lines);
    ASSERT_TRUE(RunUntil([&] {
      return static_cast<size_t>(std::count(changed_.begin(), changed_.end(), last)) > before;
    }));
  }

  std::pair<Status, ImageConfig> Inspect(const std::string& name) {
    std::pair<Status, ImageConfig> got;
    bool done = false;
    client_->InspectImage(name, [&](Status s, const ImageConfig& c) {
      got = {s, c};
      done = true;
    });
    RunUntil([&] { return done; });
    return got;
  }

  std::string dir_, socket_;
  std::unique_ptr<FakeHttpServer> server_;
  std::unique_ptr<DockerClient> client_;
  std::unique_ptr<ImageWatcher> watcher_;
  std::map<std::string, std::string> ids_;
  std::map<std::string, int> asked_;
  std::vector<std::string> events_requests_;
  std::vector<uint64_t> delays_;
  std::vector<std::string> changed_;
  int refuse_left_ = 0;
};

TEST_F(ImageWatcherTest, ConnectingForgetsEverythingAndNotifiesAll) {
  ids_ = {{"a:1", "sha256:a"}};
  Inspect("a:1");
  EXPECT_EQ(client_->cached_images(), 1u);
  MakeWatcher();
  int64_t before_ms = EpochMs();
  watcher_->Start();
  watcher_->Start();              // idempotent
  EXPECT_TRUE(changed_.empty());  // never from inside Start
  EXPECT_FALSE(watcher_->healthy());
  EXPECT_FALSE(client_->image_cache_enabled());  // off until the stream is confirmed
  EXPECT_EQ(client_->cached_images(), 0u);
  ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }));
  EXPECT_EQ(changed_, std::vector<std::string>{ImageWatcher::kAllImages});
  EXPECT_TRUE(client_->image_cache_enabled());
  EXPECT_EQ(watcher_->connections(), 1u);
  ASSERT_EQ(events_requests_.size(), 1u);
  const std::string& r = events_requests_[0];
  EXPECT_EQ(r.rfind("GET /v1.41/events?filters=%7B%22type%22%3A%5B%22image%22%5D%7D&since=", 0), 0u)
      << r;
  // since is a second before the request (seconds.nanoseconds).
  double since_s = std::stod(r.substr(r.find("since=") + 6));
  EXPECT_NEAR(since_s * 1000, static_cast<double>(before_ms - 1000), 200.0) << r;
  Inspect("a:1");
  Inspect("a:1");
  EXPECT_EQ(asked_["a:1"], 2);  // cached again once healthy
}

TEST_F(ImageWatcherTest, ATagEventForgetsTheNameSoTheNextInspectionSeesTheNewId) {
  StartAndWaitHealthy();
  ids_ = {{"fn:latest", "sha256:old"}, {"other:latest", "sha256:old"}};
  EXPECT_EQ(Inspect("fn:latest").second.id, "sha256:old");
  EXPECT_EQ(Inspect("other:latest").second.id, "sha256:old");
  // `docker build -t fn:latest .` with a new CMD: one "tag" naming the new ID and the tag.
  ids_["fn:latest"] = "sha256:new";
  PushAndWaitFor(EventLine("tag", "sha256:new", "fn:latest"), "fn:latest");
  EXPECT_EQ(Inspect("fn:latest").second.id, "sha256:new");
  EXPECT_EQ(Inspect("other:latest").second.id, "sha256:old");
  EXPECT_EQ(asked_["fn:latest"], 2);
  EXPECT_EQ(asked_["other:latest"], 1);  // untouched
  EXPECT_EQ(watcher_->events(), 1u);
}

TEST_F(ImageWatcherTest, UntagAndDeleteForgetByIdAndARemovedTagIsNotFound) {
  StartAndWaitHealthy();
  ids_ = {{"a:1", "sha256:x"}, {"b:1", "sha256:x"}, {"c:1", "sha256:y"}};
  Inspect("a:1");
  Inspect("b:1");
  Inspect("c:1");
  // `docker rmi a:1`: "untag" naming the ID, not the tag.
  ids_.erase("a:1");
  PushAndWaitFor(EventLine("untag", "sha256:x", "sha256:x"), "sha256:x");
  EXPECT_EQ(client_->cached_images(), 1u);
  auto [gone, unused] = Inspect("a:1");
  EXPECT_EQ(gone.code(), StatusCode::kNotFound);
  EXPECT_NE(gone.message().find("image a:1 not found"), std::string::npos) << gone.message();
  EXPECT_EQ(Inspect("b:1").second.id, "sha256:x");
  // `docker rmi c:1`, its last tag: "untag" then "delete".
  ids_.erase("c:1");
  PushAndWaitFor(
      EventLine("untag", "sha256:y", "sha256:y") + EventLine("delete", "sha256:y", "sha256:y"),
      "sha256:y");
  ASSERT_TRUE(
      RunUntil([&] { return std::count(changed_.begin(), changed_.end(), "sha256:y") == 2; }));
  EXPECT_EQ(Inspect("c:1").first.code(), StatusCode::kNotFound);
}

TEST_F(ImageWatcherTest, LoadAndPullOfARepositoryForgetEverythingAndAPulledTagItsName) {
  StartAndWaitHealthy();
  ids_ = {{"a:1", "sha256:a"}, {"busybox:latest", "sha256:b"}};
  auto fill = [&] {
    Inspect("a:1");
    Inspect("busybox:latest");
    EXPECT_EQ(client_->cached_images(), 2u);
  };
  fill();
  changed_.clear();
  PushAndWaitFor(EventLine("load", "sha256:z", "sha256:z"), ImageWatcher::kAllImages);
  EXPECT_EQ(client_->cached_images(), 0u);
  fill();
  // A pull names the reference in Actor.ID (as 20.10's sources write it).
  PushAndWaitFor(EventLine("pull", "busybox:latest", "busybox"), "busybox:latest");
  EXPECT_EQ(client_->cached_images(), 1u);
  fill();
  changed_.clear();
  PushAndWaitFor(EventLine("pull", "busybox", "busybox"), ImageWatcher::kAllImages);
  EXPECT_EQ(client_->cached_images(), 0u);
}

TEST_F(ImageWatcherTest, EventsThatMoveNoNameChangeNothing) {
  StartAndWaitHealthy();
  ids_ = {{"a:1", "sha256:a"}};
  Inspect("a:1");
  changed_.clear();
  // Each of these is followed by a tag of another name; the stream is in order, so once
  // that tag is heard the others were handled (and did nothing).
  PushAndWaitFor(EventLine("import", "sha256:i", "sha256:i") +
                     EventLine("save", "sha256:a", "sha256:a") + EventLine("push", "a:1", "a") +
                     EventLine("prune", "", "") + EventLine("tag", "sha256:q", "q:1"),
                 "q:1");
  EXPECT_EQ(changed_, std::vector<std::string>{"q:1"});
  EXPECT_EQ(client_->cached_images(), 1u);
  EXPECT_EQ(watcher_->events(), 5u);
}

TEST_F(ImageWatcherTest, AStreamThatEndsTurnsTheCacheOffAndReconnectsTreatingAllAsStale) {
  ImageWatcher::Options options;
  options.initial_backoff_ms = 1;
  MakeWatcher(options);
  StartAndWaitHealthy();
  ids_ = {{"a:1", "sha256:a"}};
  Inspect("a:1");
  // The engine drops the stream and refuses the next two attempts.
  refuse_left_ = 2;
  server_->CloseStreams();
  ASSERT_TRUE(RunUntil([&] { return !watcher_->healthy(); }));
  EXPECT_FALSE(client_->image_cache_enabled());
  int before = asked_["a:1"];
  Inspect("a:1");
  Inspect("a:1");
  EXPECT_EQ(asked_["a:1"], before + 2);  // every call asks while unhealthy
  ASSERT_TRUE(RunUntil([&] { return watcher_->connections() == 2; }));
  EXPECT_TRUE(watcher_->healthy());
  EXPECT_TRUE(client_->image_cache_enabled());
  EXPECT_EQ(std::count(changed_.begin(), changed_.end(), ImageWatcher::kAllImages), 2);
  EXPECT_EQ(events_requests_.size(), 4u);  // first, refused, refused, accepted
  EXPECT_EQ(delays_, (std::vector<uint64_t>{0, 1, 2, 4}));
  // Events flow on the new stream.
  PushAndWaitFor(EventLine("tag", "sha256:b", "a:1"), "a:1");
}

TEST_F(ImageWatcherTest, BackoffDoublesUpToTheCapAndStartsOverAfterAStream) {
  ImageWatcher::Options options;
  options.initial_backoff_ms = 1;
  options.max_backoff_ms = 8;
  MakeWatcher(options);
  refuse_left_ = 6;
  watcher_->Start();
  ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }));
  EXPECT_EQ(delays_, (std::vector<uint64_t>{0, 1, 2, 4, 8, 8, 8}));
  EXPECT_EQ(changed_, std::vector<std::string>{ImageWatcher::kAllImages});  // once, when up
  server_->CloseStreams();
  ASSERT_TRUE(RunUntil([&] { return watcher_->connections() == 2; }));
  EXPECT_EQ(delays_.back(), 1u);  // a stream was up: from the start again
}

TEST_F(ImageWatcherTest, SurvivesTheEngineGoingAwayAndComingBack) {
  ImageWatcher::Options options;
  options.initial_backoff_ms = 1;
  options.max_backoff_ms = 16;
  MakeWatcher(options);
  StartAndWaitHealthy();
  server_->Close();  // the socket is gone: connections are refused
  ASSERT_TRUE(RunUntil([&] { return !watcher_->healthy(); }));
  ASSERT_TRUE(RunUntil([&] { return watcher_->retry_delay_ms() >= 16; }));  // kept trying
  EXPECT_EQ(watcher_->connections(), 1u);
  StartEngine();  // restarted, same socket
  ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }));
  EXPECT_EQ(watcher_->connections(), 2u);
  EXPECT_EQ(std::count(changed_.begin(), changed_.end(), ImageWatcher::kAllImages), 2);
  PushAndWaitFor(EventLine("tag", "sha256:c", "c:1"), "c:1");
}

TEST_F(ImageWatcherTest, StopEndsTheStreamAndTurnsTheCacheOff) {
  StartAndWaitHealthy();
  ASSERT_TRUE(RunUntil([&] { return server_->open_streams() == 1; }));
  watcher_->Stop();
  EXPECT_FALSE(watcher_->healthy());
  EXPECT_FALSE(client_->image_cache_enabled());
  ASSERT_TRUE(RunUntil([&] { return server_->open_streams() == 0; }));  // we hung up
  changed_.clear();
  RunFor(20);
  EXPECT_TRUE(changed_.empty());
  ASSERT_TRUE(RunUntil([&] { return client_->in_flight() == 0; }));
  watcher_->Start();  // and again
  ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }));
  EXPECT_EQ(watcher_->connections(), 2u);
}

TEST_F(ImageWatcherTest, TheListenerMayDestroyTheWatcher) {
  watcher_ = std::make_unique<ImageWatcher>(&loop_, client_.get(), [this](const std::string& what) {
    changed_.push_back(what);
    if (what == "gone:1") watcher_.reset();
  });
  StartAndWaitHealthy();
  Push(EventLine("tag", "sha256:g", "gone:1") + EventLine("tag", "sha256:h", "after:1"));
  ASSERT_TRUE(RunUntil([&] { return watcher_ == nullptr; }));
  ASSERT_TRUE(RunUntil([&] { return client_->in_flight() == 0; }));
  RunFor(20);
  EXPECT_EQ(changed_, (std::vector<std::string>{ImageWatcher::kAllImages, "gone:1"}));
  EXPECT_FALSE(client_->image_cache_enabled());  // nobody follows the events any more
}

}  // namespace
}  // namespace ephemera::scheduler
