// Integration test of ImageWatcher against the real dockerd (label: integration): a tag
// re-pointed to another image is seen on the next inspection, and a removed tag is
// NotFound, each after the watcher's notification (a bounded wait, never a sleep).
//
// Needs ephemera/busybox:latest and ephemera/echo:latest (make -f Makefile.docker images);
// it is skipped without them. It only adds and removes the tag ephemera-test/watch:latest
// (the images themselves are untouched), and removes that tag at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "runtime/docker/docker_client.h"
#include "runtime/scheduler/image_watcher.h"
#include "tests/docker/loop_fixture.h"

namespace ephemera::scheduler {
namespace {

using docker::DockerClient;
using docker::ImageConfig;

constexpr const char* kWatch = "ephemera-test/watch:latest";
constexpr const char* kFirst = "ephemera/busybox:latest";
constexpr const char* kSecond = "ephemera/echo:latest";

class ImageWatcherIntegration : public testing::LoopTest {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    Status s;
    client_ = DockerClient::Create(&loop_, DockerClient::DefaultSocketPath(), &s);
    ASSERT_NE(client_, nullptr) << s.message();
  }

  void BeforeLoopClose() override {
    watcher_.reset();
    if (client_) {
      // The tag is ours; a NotFound means the test removed it already.
      Status s = Call([&](auto done) { client_->RemoveImage(kWatch, done); });
      EXPECT_TRUE(s.ok() || s.code() == StatusCode::kNotFound) << s.message();
    }
    client_.reset();
  }

  template <typename Start>
  Status Call(Start start) {
    Status result;
    bool done = false;
    start([&](Status s) {
      result = s;
      done = true;
    });
    RunUntil([&] { return done; });
    return result;
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

  size_t Heard(const std::string& what) const {
    return static_cast<size_t>(std::count(changed_.begin(), changed_.end(), what));
  }

  std::unique_ptr<DockerClient> client_;
  std::unique_ptr<ImageWatcher> watcher_;
  std::vector<std::string> changed_;
};

TEST_F(ImageWatcherIntegration, ARetaggedImageIsSeenAndARemovedTagIsNotFound) {
  auto [s1, first] = Inspect(kFirst);
  auto [s2, second] = Inspect(kSecond);
  if (!s1.ok() || !s2.ok()) {
    GTEST_SKIP() << "needs " << kFirst << " and " << kSecond << ": " << s1.message() << " "
                 << s2.message();
  }
  ASSERT_NE(first.id, second.id);
  // A leftover of an interrupted run would make the first tag a re-point: start clean.
  Status clean = Call([&](auto done) { client_->RemoveImage(kWatch, done); });
  ASSERT_TRUE(clean.ok() || clean.code() == StatusCode::kNotFound) << clean.message();

  watcher_ = std::make_unique<ImageWatcher>(
      &loop_, client_.get(), [&](const std::string& what) { changed_.push_back(what); });
  watcher_->Start();
  ASSERT_TRUE(RunUntil([&] { return watcher_->healthy(); }, 10000));
  EXPECT_EQ(Heard(ImageWatcher::kAllImages), 1u);

  // The tag appears: ephemera-test/watch:latest -> busybox.
  ASSERT_TRUE(Call([&](auto done) { client_->TagImage(kFirst, kWatch, done); }).ok());
  ASSERT_TRUE(RunUntil([&] { return Heard(kWatch) >= 1; }, 10000));
  auto [a, watch1] = Inspect(kWatch);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(watch1.id, first.id);
  EXPECT_EQ(watch1.cmd, first.cmd);
  uint64_t sent = client_->image_inspections_sent();
  EXPECT_EQ(Inspect(kWatch).second.id, first.id);
  EXPECT_EQ(client_->image_inspections_sent(), sent);  // a cache hit

  // The rebuild: the same tag now names echo (another ID, ENTRYPOINT and CMD). The next
  // inspection after the notification sees it.
  ASSERT_TRUE(Call([&](auto done) { client_->TagImage(kSecond, kWatch, done); }).ok());
  ASSERT_TRUE(RunUntil([&] { return Heard(kWatch) >= 2; }, 10000));
  auto [b, watch2] = Inspect(kWatch);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(watch2.id, second.id);
  EXPECT_EQ(watch2.entrypoint, second.entrypoint);
  EXPECT_EQ(watch2.cmd, second.cmd);
  EXPECT_EQ(client_->image_inspections_sent(), sent + 1);

  // docker rmi ephemera-test/watch:latest: the engine says "untag <echo's ID>" (echo keeps
  // its own tag, so nothing is deleted); the next inspection of the tag is NotFound.
  ASSERT_TRUE(Call([&](auto done) { client_->RemoveImage(kWatch, done); }).ok());
  ASSERT_TRUE(RunUntil([&] { return Heard(second.id) >= 1; }, 10000));
  auto [c, unused] = Inspect(kWatch);
  EXPECT_EQ(c.code(), StatusCode::kNotFound);
  EXPECT_NE(c.message().find(std::string("image ") + kWatch + " not found"), std::string::npos)
      << c.message();
  EXPECT_TRUE(Inspect(kSecond).first.ok());  // the image itself is still there
  EXPECT_TRUE(watcher_->healthy());
  EXPECT_EQ(watcher_->connections(), 1u);
}

}  // namespace
}  // namespace ephemera::scheduler
