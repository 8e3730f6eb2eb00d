// Faults (issue 9, section 5), each with its expected outcome and no container left: a
// container killed mid-invocation, an engine that accepts and never answers, the daemon
// killed with kill -9 and started again, and a state file whose disk is full.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/ephemera-faults-XXXXXX";
  return mkdtemp(tmpl);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(Faults, AContainerKilledMidInvocationIsAnExitErrorAndIsRemoved) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  std::string body =
      R"({"FunctionName":"victim","Code":{"ImageUri":"ephemera/busybox:latest"},"Timeout":30,)"
      R"("ImageConfig":{"EntryPoint":["sh","-c","sleep 20; cat"]},)"
      R"("Environment":{"Variables":{"EPHEMERA_MODE":"exec"}}})";
  ASSERT_EQ(Http("POST", d.url() + "/2015-03-31/functions", body).status, 201);
  HttpResult r;
  std::thread caller([&] { r = d.Invoke("victim", "{}"); });
  std::vector<std::string> ids;
  ASSERT_TRUE(WaitUntil(
      [&] {
        ids = ContainersWithLabel("ephemera.function=victim");
        return !ids.empty();
      },
      20000));
  // Give the runtime its event first, so the kill lands mid-invocation.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(std::system(("/usr/bin/docker kill " + ids[0] + " >/dev/null").c_str()), 0);
  caller.join();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("Runtime.ExitError"), std::string::npos) << r.body;
  EXPECT_TRUE(d.WaitIdle());
  EXPECT_TRUE(ContainersWithLabel("ephemera.function=victim").empty());
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

// An engine that accepts connections and never says a word.
class SilentEngine {
 public:
  SilentEngine() : dir_(TempDir()), path_(dir_ + "/docker.sock") {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 64);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) break;
        clients_.push_back(c);  // read nothing, answer nothing
      }
    });
  }
  ~SilentEngine() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int c : clients_) close(c);
    std::filesystem::remove_all(dir_);
  }
  std::string endpoint() const { return "unix://" + path_; }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> clients_;
};

TEST(Faults, AnEngineThatNeverAnswersGivesAServiceExceptionInBoundedTime) {
  SilentEngine engine;
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--docker", engine.endpoint(), "--engine-timeout", "1000"};
  ASSERT_EQ(d.Start(o), "");
  auto t0 = std::chrono::steady_clock::now();
  HttpResult r = d.Invoke("echo", "{}");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(r.status == 503 || r.status == 502) << r.status << " " << r.body;
  EXPECT_EQ(r.Header("x-amzn-errortype"), "ServiceException");
  EXPECT_NE(r.body.find(engine.path()), std::string::npos) << "names the engine: " << r.body;
  EXPECT_LT(seconds, 10.0) << "bounded by --engine-timeout, not the 60 s default";
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(Faults, ADaemonKilledWithKill9LeavesNothingAfterTheNextStart) {
  std::string state = TempDir() + "/state.json";
  Daemon first;
  Daemon::Options o;
  o.state_path = state;
  ASSERT_EQ(first.Start(o), "");
  std::string body =
      R"({"FunctionName":"k9-warm","Code":{"ImageUri":"ephemera/echo:latest"},)"
      R"("Environment":{"Variables":{"EPHEMERA_MODE":"native","EPHEMERA_POLICY":"warm"}}})";
  ASSERT_EQ(Http("POST", first.url() + "/2015-03-31/functions", body).status, 201);
  ASSERT_EQ(first.Invoke("k9-warm", "{}").status, 200);
  std::string old_label = "ephemera.daemon=" + std::to_string(first.pid());
  ASSERT_EQ(ContainersWithLabel("ephemera.function=k9-warm").size(), 1u)
      << "a warm environment is left running";
  kill(first.pid(), SIGKILL);
  first.Stop();  // reaps the killed process
  Daemon second;
  ASSERT_EQ(second.Start(o), "");
  // The ready line comes after the leftovers are removed.
  EXPECT_TRUE(ContainersWithLabel(old_label).empty());
  HttpResult again = second.Invoke("k9-warm", "{}");
  EXPECT_EQ(again.status, 200) << "the function created before the kill persisted";
  EXPECT_EQ(second.Stop(), 0) << second.log();
  std::filesystem::remove_all(std::filesystem::path(state).parent_path());
}

TEST(Faults, AFullDiskFailsCreateFunctionAndKeepsTheOldState) {
  std::string dir = TempDir();
  ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k"), 0) << "needs root";
  std::string state = dir + "/state.json";
  {
    Daemon d;
    Daemon::Options o;
    o.state_path = state;
    ASSERT_EQ(d.Start(o), "");
    auto create = [&](const std::string& name) {
      return Http(
          "POST", d.url() + "/2015-03-31/functions",
          R"({"FunctionName":")" + name + R"(","Code":{"ImageUri":"ephemera/shout:latest"}})");
    };
    ASSERT_EQ(create("kept").status, 201);
    std::string before = ReadFile(state);
    ASSERT_NE(before.find("kept"), std::string::npos);
    // Fill the disk.
    std::ofstream filler(dir + "/filler", std::ios::binary);
    std::string block(4096, 'x');
    while (filler.write(block.data(), block.size())) {
    }
    HttpResult r = create("lost");
    EXPECT_EQ(r.status, 500) << r.body;
    EXPECT_EQ(r.Header("x-amzn-errortype"), "ServiceException");
    EXPECT_NE(r.body.find(state), std::string::npos) << "names the state file: " << r.body;
    EXPECT_EQ(ReadFile(state), before) << "the old state is intact";
    EXPECT_EQ(Http("GET", d.url() + "/2015-03-31/functions/lost").status, 404);
    EXPECT_EQ(Http("GET", d.url() + "/2015-03-31/functions/kept").status, 200);
    EXPECT_EQ(d.Stop(), 0) << d.log();
  }
  umount2(dir.c_str(), MNT_DETACH);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ephemera::testing
