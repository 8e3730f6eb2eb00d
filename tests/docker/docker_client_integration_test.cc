// Integration tests of DockerClient against the real dockerd (label: integration).
//
// The image ephemera-test/busybox:latest is built once if missing: a `docker import` of a
// tarball holding Debian's static busybox (busybox-static). Every container a test
// creates carries the label ephemera-test.docker=<pid> and is removed in TearDown.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "runtime/core/clock.h"
#include "runtime/docker/docker_client.h"
#include "tests/docker/loop_fixture.h"

namespace ephemera::docker {
namespace {

constexpr const char* kImage = "ephemera-test/busybox:latest";

class DockerIntegration : public testing::LoopTest {
 protected:
  static void SetUpTestSuite() {
    // Shelling out once per suite is fine in tests (never in the daemon). The lock keeps
    // parallel ctest processes from importing it several times (dangling images).
    const char* build =
        "exec 9>/tmp/ephemera-test-busybox.lock; flock 9; "
        "docker image inspect ephemera-test/busybox:latest >/dev/null 2>&1 || ("
        "set -e; d=$(mktemp -d); mkdir \"$d/bin\" \"$d/tmp\"; cp /bin/busybox \"$d/bin/busybox\"; "
        "for c in sh echo sleep cat true false; do ln -s busybox \"$d/bin/$c\"; done; "
        "tar -C \"$d\" -c . | docker import -c 'CMD [\"/bin/sh\"]' -c 'ENV PATH=/bin' - "
        "ephemera-test/busybox:latest >/dev/null; rm -rf \"$d\")";
    ASSERT_EQ(std::system(build), 0) << "cannot build " << kImage << " (needs busybox-static)";
  }

  void SetUp() override {
    LoopTest::SetUp();
    Status s;
    client_ = DockerClient::Create(&loop_, DockerClient::DefaultSocketPath(), &s);
    ASSERT_NE(client_, nullptr) << s.message();
    label_value_ = std::to_string(getpid());
  }

  void BeforeLoopClose() override {
    if (client_) {
      for (const std::string& id : created_) {
        Status s = Call<Status>([&](auto done) { client_->RemoveContainer(id, done); });
        EXPECT_TRUE(s.ok()) << s.message();
      }
    }
    client_.reset();
  }

  // Runs one call to completion on the loop and returns what its callback got.
  template <typename R, typename Start>
  R Call(Start start) {
    R result{};
    bool done = false;
    start([&](R r) {
      result = std::move(r);
      done = true;
    });
    RunUntil([&] { return done; });
    return result;
  }
  template <typename V, typename Start>
  std::pair<Status, V> Call2(Start start) {
    std::pair<Status, V> result{};
    bool done = false;
    start([&](Status s, V v) {
      result = {std::move(s), std::move(v)};
      done = true;
    });
    RunUntil([&] { return done; });
    return result;
  }

  ContainerSpec Spec(std::vector<std::string> cmd) {
    ContainerSpec spec;
    spec.image = kImage;
    spec.cmd = std::move(cmd);
    spec.labels["ephemera-test.docker"] = label_value_;
    return spec;
  }

  std::string Create(const ContainerSpec& spec) {
    auto [s, id] = Call2<std::string>([&](auto done) { client_->CreateContainer(spec, done); });
    EXPECT_TRUE(s.ok()) << s.message();
    if (!id.empty()) created_.push_back(id);
    return id;
  }

  std::unique_ptr<DockerClient> client_;
  std::vector<std::string> created_;
  std::string label_value_;
};

TEST_F(DockerIntegration, PingSucceedsAndReusesTheConnection) {
  for (int i = 0; i < 3; ++i) {
    Status s = Call<Status>([&](auto done) { client_->Ping(done); });
    EXPECT_TRUE(s.ok()) << s.message();
  }
  EXPECT_EQ(client_->connections_opened(), 1u);  // keep-alive
}

TEST_F(DockerIntegration, InspectImageReadsConfigAndCachesIt) {
  double t0 = MonotonicMs();
  auto [s, config] = Call2<ImageConfig>([&](auto done) {
    client_->InspectImage(kImage, [done](Status st, const ImageConfig& c) { done(st, c); });
  });
  double first_ms = MonotonicMs() - t0;
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(config.id.rfind("sha256:", 0), 0u) << config.id;
  EXPECT_EQ(config.cmd, std::vector<std::string>{"/bin/sh"});
  EXPECT_NE(std::find(config.env.begin(), config.env.end(), "PATH=/bin"), config.env.end());

  t0 = MonotonicMs();
  auto [s2, cached] = Call2<ImageConfig>([&](auto done) {
    client_->InspectImage(kImage, [done](Status st, const ImageConfig& c) { done(st, c); });
  });
  double second_ms = MonotonicMs() - t0;
  EXPECT_TRUE(s2.ok());
  EXPECT_EQ(cached.id, config.id);
  EXPECT_EQ(client_->image_inspections_sent(), 1u);  // the engine was asked once
  RecordProperty("first_ms", std::to_string(first_ms));
  RecordProperty("cached_ms", std::to_string(second_ms));
  EXPECT_LT(second_ms, 5.0);
}

TEST_F(DockerIntegration, InspectUnknownImageIsNotFound) {
  auto [s, config] = Call2<ImageConfig>([&](auto done) {
    client_->InspectImage("ephemera-test/no-such-image:latest",
                          [done](Status st, const ImageConfig& c) { done(st, c); });
  });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("image ephemera-test/no-such-image:latest not found"),
            std::string::npos)
      << s.message();
}

TEST_F(DockerIntegration, RunsAContainerToExitCodeAndReadsDemuxedLogs) {
  std::string id = Create(Spec({"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}));
  ASSERT_FALSE(id.empty());
  bool waiting = false, exited = false;
  Status wait_status;
  int exit_code = -1;
  client_->WaitContainer(
      id,
      [&](Status s) {
        ASSERT_TRUE(s.ok()) << s.message();
        waiting = true;
      },
      [&](Status s, int code) {
        wait_status = s;
        exit_code = code;
        exited = true;
      });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  Status started = Call<Status>([&](auto done) { client_->StartContainer(id, done); });
  ASSERT_TRUE(started.ok()) << started.message();
  ASSERT_TRUE(RunUntil([&] { return exited; }));
  ASSERT_TRUE(wait_status.ok()) << wait_status.message();
  EXPECT_EQ(exit_code, 3);

  auto [is, state] = Call2<ContainerState>([&](auto done) {
    client_->InspectContainer(id, [done](Status st, const ContainerState& c) { done(st, c); });
  });
  ASSERT_TRUE(is.ok()) << is.message();
  EXPECT_EQ(state.status, "exited");
  EXPECT_FALSE(state.running);
  EXPECT_FALSE(state.oom_killed);
  EXPECT_EQ(state.exit_code, 3);

  auto [ls, logs] = Call2<std::string>([&](auto done) { client_->Logs(id, done); });
  ASSERT_TRUE(ls.ok()) << ls.message();
  EXPECT_NE(logs.find("to-stdout\n"), std::string::npos) << logs;
  EXPECT_NE(logs.find("to-stderr\n"), std::string::npos) << logs;
  EXPECT_EQ(logs.size(), std::string("to-stdout\nto-stderr\n").size()) << logs;  // no framing
}

TEST_F(DockerIntegration, AttachBeforeStartCapturesOutput) {
  std::string id = Create(Spec({"/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 0"}));
  ASSERT_FALSE(id.empty());
  std::string out, err;
  bool attached = false, ended = false;
  client_->Attach(
      id,
      [&](Status s) {
        ASSERT_TRUE(s.ok()) << s.message();
        attached = true;
      },
      [&](StreamType t, std::string_view data) {
        (t == StreamType::kStderr ? err : out).append(data);
      },
      [&](Status s) {
        EXPECT_TRUE(s.ok()) << s.message();
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return attached; }));
  Status started = Call<Status>([&](auto done) { client_->StartContainer(id, done); });
  ASSERT_TRUE(started.ok()) << started.message();
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(out, "out-line\n");
  EXPECT_EQ(err, "err-line\n");
}

TEST_F(DockerIntegration, CreateWithUnknownImageIsNotFoundNamingIt) {
  ContainerSpec spec = Spec({"/bin/true"});
  spec.image = "ephemera-test/no-such-image:latest";
  auto [s, id] = Call2<std::string>([&](auto done) { client_->CreateContainer(spec, done); });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  // Not one of the project's images: no build hint, but what to do about it.
  EXPECT_EQ(s.message(),
            "image ephemera-test/no-such-image:latest not found on the engine (it does not pull: "
            "build or load it)");
  EXPECT_TRUE(id.empty());
}

TEST_F(DockerIntegration, StartWithMissingExecutableQuotesTheEngine) {
  std::string id = Create(Spec({"/no/such/binary"}));
  ASSERT_FALSE(id.empty());
  Status s = Call<Status>([&](auto done) { client_->StartContainer(id, done); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/no/such/binary"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cannot start container " + id), std::string::npos) << s.message();
}

TEST_F(DockerIntegration, KillRunningContainerThenRemoveLeavesNothing) {
  ContainerSpec spec = Spec({"/bin/sleep", "30"});
  spec.labels["ephemera-test.kill"] = label_value_;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  bool waiting = false, exited = false;
  int exit_code = -1;
  client_->WaitContainer(
      id, [&](Status s) { waiting = s.ok(); },
      [&](Status s, int code) {
        EXPECT_TRUE(s.ok()) << s.message();
        exit_code = code;
        exited = true;
      });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  ASSERT_TRUE(Call<Status>([&](auto done) { client_->StartContainer(id, done); }).ok());
  Status killed = Call<Status>([&](auto done) { client_->KillContainer(id, done); });
  EXPECT_TRUE(killed.ok()) << killed.message();
  ASSERT_TRUE(RunUntil([&] { return exited; }, 10000));
  EXPECT_EQ(exit_code, 137);  // SIGKILL
  // Killing a stopped container is fine too.
  EXPECT_TRUE(Call<Status>([&](auto done) { client_->KillContainer(id, done); }).ok());
  Status removed = Call<Status>([&](auto done) { client_->RemoveContainer(id, done); });
  EXPECT_TRUE(removed.ok()) << removed.message();
  auto [ls, ids] = Call2<std::vector<std::string>>(
      [&](auto done) { client_->ListContainers("ephemera-test.kill=" + label_value_, done); });
  ASSERT_TRUE(ls.ok()) << ls.message();
  EXPECT_TRUE(ids.empty());
  // Removing again: already gone counts as done. Operations on it are NotFound.
  EXPECT_TRUE(Call<Status>([&](auto done) { client_->RemoveContainer(id, done); }).ok());
  Status start_gone = Call<Status>([&](auto done) { client_->StartContainer(id, done); });
  EXPECT_EQ(start_gone.code(), StatusCode::kNotFound);
  EXPECT_NE(start_gone.message().find(id), std::string::npos);
  auto [inspect_gone, state] = Call2<ContainerState>([&](auto done) {
    client_->InspectContainer(id, [done](Status st, const ContainerState& c) { done(st, c); });
  });
  EXPECT_EQ(inspect_gone.code(), StatusCode::kNotFound);
  EXPECT_EQ(inspect_gone.message(), "container " + id + " not found (inspect)");
}

// The dispose path may remove a container that still runs (force=true): the removal
// succeeds and a registered wait still gets its exit.
TEST_F(DockerIntegration, ForceRemoveOfARunningContainerEndsItsWait) {
  ContainerSpec spec = Spec({"/bin/sleep", "30"});
  spec.labels["ephemera-test.force"] = label_value_;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  bool waiting = false, exited = false;
  Status wait_status;
  int exit_code = -1;
  client_->WaitContainer(
      id, [&](Status s) { waiting = s.ok(); },
      [&](Status s, int code) {
        wait_status = s;
        exit_code = code;
        exited = true;
      });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  ASSERT_TRUE(Call<Status>([&](auto done) { client_->StartContainer(id, done); }).ok());
  Status removed = Call<Status>([&](auto done) { client_->RemoveContainer(id, done); });
  EXPECT_TRUE(removed.ok()) << removed.message();
  ASSERT_TRUE(RunUntil([&] { return exited; }, 10000));
  EXPECT_TRUE(wait_status.ok()) << wait_status.message();
  EXPECT_EQ(exit_code, 137);
  auto [ls, ids] = Call2<std::vector<std::string>>(
      [&](auto done) { client_->ListContainers("ephemera-test.force=" + label_value_, done); });
  EXPECT_TRUE(ids.empty());
}

// memory_bytes reaches the engine (no swap), and InspectContainer tells an OOM kill apart.
TEST_F(DockerIntegration, MemoryLimitKillIsReportedAsOomKilled) {
  ContainerSpec spec =
      Spec({"/bin/sh", "-c",
            "x=$(/bin/busybox head -c 64000000 /dev/zero | /bin/busybox tr '\\0' a); echo ${#x}"});
  spec.memory_bytes = 16 << 20;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  bool waiting = false, exited = false;
  int exit_code = -1;
  client_->WaitContainer(
      id, [&](Status s) { waiting = s.ok(); },
      [&](Status, int code) {
        exit_code = code;
        exited = true;
      });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  ASSERT_TRUE(Call<Status>([&](auto done) { client_->StartContainer(id, done); }).ok());
  ASSERT_TRUE(RunUntil([&] { return exited; }));
  EXPECT_EQ(exit_code, 137);
  // The engine may report the exit before it has recorded the OOM kill (the daemon asks
  // again for the same reason, environment.cc ClassifyKill): ask up to 10 times, 50 ms apart.
  ContainerState state;
  for (int ask = 0; ask < 10 && !state.oom_killed; ++ask) {
    if (ask > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto [is, st] = Call2<ContainerState>([&](auto done) {
      client_->InspectContainer(id, [done](Status e, const ContainerState& c) { done(e, c); });
    });
    ASSERT_TRUE(is.ok()) << is.message();
    state = st;
  }
  EXPECT_TRUE(state.oom_killed);
}

// A burst, as when many invocations arrive at once: every container runs through
// create -> wait registered -> start -> exit -> remove concurrently on one client.
TEST_F(DockerIntegration, ConcurrentColdPathsEachCompleteOnce) {
  constexpr int kCount = 8;
  struct Run {
    std::string id;
    int exits = 0, removes = 0, exit_code = -1;
    Status error;
  };
  std::vector<Run> runs(kCount);
  int finished = 0;
  for (int i = 0; i < kCount; ++i) {
    ContainerSpec spec = Spec({"/bin/sh", "-c", "exit " + std::to_string(i)});
    client_->CreateContainer(spec, [&, i](Status s, std::string id) {
      Run& run = runs[i];
      if (!s.ok()) {
        run.error = s;
        ++finished;
        return;
      }
      run.id = id;
      created_.push_back(id);
      client_->WaitContainer(
          id,
          [&, id](Status ws) {
            if (!ws.ok()) {
              run.error = ws;
              ++finished;
              return;
            }
            client_->StartContainer(id, [&](Status ss) {
              if (!ss.ok()) run.error = ss;
            });
          },
          [&, id](Status ws, int code) {
            ++run.exits;
            run.exit_code = code;
            if (!ws.ok()) run.error = ws;
            client_->RemoveContainer(id, [&](Status rs) {
              ++run.removes;
              if (!rs.ok()) run.error = rs;
              ++finished;
            });
          });
    });
  }
  ASSERT_TRUE(RunUntil([&] { return finished == kCount; }, 60000));
  RunFor(20);
  for (int i = 0; i < kCount; ++i) {
    EXPECT_TRUE(runs[i].error.ok()) << runs[i].error.message();
    EXPECT_EQ(runs[i].exits, 1);
    EXPECT_EQ(runs[i].removes, 1);
    EXPECT_EQ(runs[i].exit_code, i);
  }
  RecordProperty("connections_opened", std::to_string(client_->connections_opened()));
  EXPECT_LE(client_->connections_opened(), static_cast<uint64_t>(3 * kCount));
}

TEST_F(DockerIntegration, ListContainersFiltersByLabel) {
  ContainerSpec spec = Spec({"/bin/true"});
  spec.labels["ephemera-test.list"] = label_value_;
  std::string a = Create(spec), b = Create(spec);
  std::string other = Create(Spec({"/bin/true"}));
  auto [s, ids] = Call2<std::vector<std::string>>(
      [&](auto done) { client_->ListContainers("ephemera-test.list=" + label_value_, done); });
  ASSERT_TRUE(s.ok()) << s.message();
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> want = {a, b};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids, want);
  auto [s2, by_key] = Call2<std::vector<std::string>>(
      [&](auto done) { client_->ListContainers("ephemera-test.list", done); });
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(std::count(by_key.begin(), by_key.end(), other), 0);
}

TEST_F(DockerIntegration, CreateHonoursTheSpec) {
  ContainerSpec spec = Spec({});
  spec.entrypoint = {"/bin/sh", "-c", "echo \"$GREETING from $(pwd)\"; exit 0"};
  spec.env = {"GREETING=hello"};
  spec.working_dir = "/tmp";
  spec.memory_bytes = 64 << 20;
  spec.nano_cpus = 500000000;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  std::string out;
  bool attached = false, ended = false;
  client_->Attach(
      id, [&](Status s) { attached = s.ok(); },
      [&](StreamType, std::string_view d) { out.append(d); }, [&](Status) { ended = true; });
  ASSERT_TRUE(RunUntil([&] { return attached; }));
  ASSERT_TRUE(Call<Status>([&](auto done) { client_->StartContainer(id, done); }).ok());
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(out, "hello from /tmp\n");
}

TEST_F(DockerIntegration, ReadonlyRootfsWithTmpfsAndExtraHosts) {
  ContainerSpec spec = Spec({"/bin/sh", "-c",
                             "(echo x > /probe) 2>/dev/null && echo rootfs-writable; "
                             "echo y > /tmp/probe && echo tmp-writable; "
                             "/bin/busybox grep -c 'ephemera-host' /etc/hosts"});
  spec.network_mode = "bridge";  // ExtraHosts needs a network namespace of its own
  spec.readonly_rootfs = true;
  spec.tmpfs = {{"/tmp", "rw,size=1m"}};
  spec.pids_limit = 16;
  spec.init = true;
  spec.extra_hosts = {"ephemera-host:127.0.0.1"};
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  std::string out;
  bool attached = false, ended = false;
  client_->Attach(
      id, [&](Status s) { attached = s.ok(); },
      [&](StreamType, std::string_view d) { out.append(d); }, [&](Status) { ended = true; });
  ASSERT_TRUE(RunUntil([&] { return attached; }));
  Status started = Call<Status>([&](auto done) { client_->StartContainer(id, done); });
  ASSERT_TRUE(started.ok()) << started.message();
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(out, "tmp-writable\n1\n");
}

// The event stream against the engine: a tag and its removal, as the image watcher
// sees them. The tag is ours (ephemera-test/events:p<pid>) and removed at the end.
TEST_F(DockerIntegration, EventsReportATagAndItsRemoval) {
  auto [is, image] = Call2<ImageConfig>([&](auto done) {
    client_->InspectImage(kImage, [done](Status st, const ImageConfig& c) { done(st, c); });
  });
  ASSERT_TRUE(is.ok()) << is.message();
  const std::string tag = "ephemera-test/events:p" + label_value_;
  std::vector<EngineEvent> seen;
  bool started = false, ended = false;
  DockerClient::RequestId stream = client_->Events(
      "{\"type\":[\"image\"]}", EpochMs() - 1000,
      [&](Status s) {
        ASSERT_TRUE(s.ok()) << s.message();
        started = true;
      },
      [&](const EngineEvent& e) { seen.push_back(e); }, [&](Status) { ended = true; });
  ASSERT_TRUE(RunUntil([&] { return started; }));
  auto find = [&](const std::string& action, const std::string& id, const std::string& name) {
    return std::find_if(seen.begin(), seen.end(), [&](const EngineEvent& e) {
      auto n = e.attributes.find("name");
      return e.action == action && e.id == id && n != e.attributes.end() && n->second == name;
    });
  };
  Status tagged = Call<Status>([&](auto done) { client_->TagImage(kImage, tag, done); });
  ASSERT_TRUE(tagged.ok()) << tagged.message();
  ASSERT_TRUE(RunUntil([&] { return find("tag", image.id, tag) != seen.end(); }, 10000));
  auto t = find("tag", image.id, tag);
  EXPECT_EQ(t->type, "image");
  EXPECT_GT(t->time_nano, (EpochMs() - 60000) * 1000000);
  // The image keeps its own tag, so removing ours only untags; 20.10 names the ID, not
  // the tag, in the untag event.
  Status removed = Call<Status>([&](auto done) { client_->RemoveImage(tag, done); });
  ASSERT_TRUE(removed.ok()) << removed.message();
  ASSERT_TRUE(RunUntil([&] { return find("untag", image.id, image.id) != seen.end(); }, 10000));
  EXPECT_EQ(find("delete", image.id, image.id), seen.end());
  Status again = Call<Status>([&](auto done) { client_->RemoveImage(tag, done); });
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_EQ(again.message(), "image " + tag + " not found (remove)");
  client_->Cancel(stream);
  RunFor(20);
  EXPECT_FALSE(ended);
  EXPECT_EQ(client_->in_flight(), 0u);
}

// A memory-limit kill reaches the event stream as a container "oom" event, and
// InspectContainer says State.OOMKilled.
TEST_F(DockerIntegration, EventsReportAnOomKill) {
  std::vector<EngineEvent> seen;
  bool started = false;
  DockerClient::RequestId stream = client_->Events(
      "{\"type\":[\"container\"],\"event\":[\"oom\"],\"label\":[\"ephemera-test.docker=" +
          label_value_ + "\"]}",
      EpochMs() - 1000, [&](Status s) { started = s.ok(); },
      [&](const EngineEvent& e) { seen.push_back(e); }, [](Status) {});
  ASSERT_TRUE(RunUntil([&] { return started; }));
  ContainerSpec spec =
      Spec({"/bin/sh", "-c",
            "x=$(/bin/busybox head -c 64000000 /dev/zero | /bin/busybox tr '\\0' a); echo ${#x}"});
  spec.memory_bytes = 16 << 20;
  std::string id = Create(spec);
  ASSERT_FALSE(id.empty());
  bool waiting = false, exited = false;
  client_->WaitContainer(
      id, [&](Status s) { waiting = s.ok(); }, [&](Status, int) { exited = true; });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  ASSERT_TRUE(Call<Status>([&](auto done) { client_->StartContainer(id, done); }).ok());
  auto oom_of_ours = [&] {
    return std::any_of(seen.begin(), seen.end(), [&](const EngineEvent& e) { return e.id == id; });
  };
  ASSERT_TRUE(RunUntil([&] { return exited && oom_of_ours(); }));
  EXPECT_EQ(seen[0].type, "container");
  EXPECT_EQ(seen[0].action, "oom");
  EXPECT_EQ(seen[0].attributes.at("ephemera-test.docker"), label_value_);
  client_->Cancel(stream);
  auto [st, state] = Call2<ContainerState>([&](auto done) {
    client_->InspectContainer(id, [done](Status s2, const ContainerState& c) { done(s2, c); });
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(state.oom_killed);
  EXPECT_EQ(state.exit_code, 137);
}

TEST_F(DockerIntegration, DestroyingTheClientWithAWaitInFlightRunsNothing) {
  std::string id = Create(Spec({"/bin/true"}));
  ASSERT_FALSE(id.empty());
  int calls = 0;
  bool waiting = false;
  client_->WaitContainer(
      id, [&](Status) { waiting = true; }, [&](Status, int) { ++calls; });
  ASSERT_TRUE(RunUntil([&] { return waiting; }));
  client_.reset();
  RunFor(20);
  EXPECT_EQ(calls, 0);
  // Clean up with a fresh client.
  client_ = DockerClient::Create(&loop_, DockerClient::DefaultSocketPath());
}

}  // namespace
}  // namespace ephemera::docker
