// Unit tests of DockerClient without dockerd: stream framing, error mapping, and the
// client against a fake engine on a unix socket.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "runtime/docker/docker_client.h"
#include "tests/docker/fake_http_server.h"
#include "tests/docker/loop_fixture.h"

namespace ephemera::docker {
namespace {

using testing::FakeHttpServer;

std::string Frame(uint8_t type, const std::string& payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(type);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + payload;
}

struct Demuxed {
  std::string out, err, all;
};

Demuxed FeedInPieces(const std::string& stream, size_t piece) {
  Demuxed d;
  DockerStreamDemuxer demuxer;
  for (size_t i = 0; i < stream.size(); i += piece) {
    demuxer.Feed(std::string_view(stream).substr(i, piece), [&](StreamType t, std::string_view p) {
      (t == StreamType::kStderr ? d.err : d.out).append(p);
      d.all.append(p);
    });
  }
  EXPECT_FALSE(demuxer.mid_frame());
  return d;
}

TEST(DockerStreamDemuxer, DecodesFramesSplitAnywhere) {
  std::string stream = Frame(1, "hello from container\n") + Frame(2, "oops\n") + Frame(1, "") +
                       Frame(1, std::string(70000, 'x')) + Frame(0, "in") + Frame(2, "bye\n");
  for (size_t piece : {1ul, 2ul, 3ul, 7ul, 8ul, 9ul, 13ul, 4096ul, stream.size()}) {
    SCOPED_TRACE(piece);
    Demuxed d = FeedInPieces(stream, piece);
    EXPECT_EQ(d.out, "hello from container\n" + std::string(70000, 'x') + "in");
    EXPECT_EQ(d.err, "oops\nbye\n");
    EXPECT_EQ(d.all, "hello from container\noops\n" + std::string(70000, 'x') + "inbye\n");
  }
}

TEST(DockerStreamDemuxer, RandomFramesAndSplitsRoundTrip) {
  std::mt19937 rng(20261123);  // fixed seed: reproducible
  for (int round = 0; round < 200; ++round) {
    std::string stream, want_out, want_err;
    int frames = static_cast<int>(rng() % 6);
    for (int f = 0; f < frames; ++f) {
      std::string payload(rng() % 300, '\0');
      for (char& c : payload) c = static_cast<char>(rng());
      uint8_t type = static_cast<uint8_t>(1 + rng() % 2);
      (type == 2 ? want_err : want_out) += payload;
      stream += Frame(type, payload);
    }
    Demuxed got;
    DockerStreamDemuxer demuxer;
    for (size_t at = 0; at < stream.size();) {
      size_t n = std::min<size_t>(1 + rng() % 40, stream.size() - at);
      demuxer.Feed(std::string_view(stream).substr(at, n), [&](StreamType t, std::string_view p) {
        (t == StreamType::kStderr ? got.err : got.out).append(p);
      });
      at += n;
    }
    EXPECT_FALSE(demuxer.mid_frame());
    EXPECT_EQ(got.out, want_out) << "round " << round;
    EXPECT_EQ(got.err, want_err) << "round " << round;
  }
}

TEST(DockerStreamDemuxer, ReportsATruncatedFrame) {
  DockerStreamDemuxer demuxer;
  std::string got;
  std::string frame = Frame(1, "abcdef");
  demuxer.Feed(std::string_view(frame).substr(0, 10),
               [&](StreamType, std::string_view p) { got.append(p); });
  EXPECT_EQ(got, "ab");  // payload is delivered as it arrives
  EXPECT_TRUE(demuxer.mid_frame());
  demuxer.Feed(std::string_view(frame).substr(10),
               [&](StreamType, std::string_view p) { got.append(p); });
  EXPECT_EQ(got, "abcdef");
  EXPECT_FALSE(demuxer.mid_frame());
}

TEST(DockerStreamDemuxer, PassesATtyStreamThroughUnchanged) {
  Demuxed d = FeedInPieces("hello tty\r\nmore\r\n", 3);
  EXPECT_EQ(d.out, "hello tty\r\nmore\r\n");
  EXPECT_EQ(d.err, "");
}

TEST(DockerEngineError, NamesTheImageWhenCreateGets404) {
  Status s = EngineError("create a container from", Target::kImage, "ephemera/echo:latest", 404,
                         "{\"message\":\"No such image: ephemera/echo:latest\"}\n");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "image ephemera/echo:latest not found: build it with make -f Makefile.docker images");
}

TEST(DockerEngineError, NamesTheContainerOn404) {
  Status s = EngineError("start", Target::kContainer, "abc123", 404,
                         "{\"message\":\"No such container: abc123\"}");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "container abc123 not found (start)");
}

TEST(DockerEngineError, QuotesTheEngineOnStart400) {
  Status s = EngineError("start", Target::kContainer, "c1", 400,
                         "{\"message\":\"failed to create shim task: OCI runtime create failed: "
                         "exec: \\\"/x\\\": stat /x: no such file or directory: unknown\"}");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cannot start container c1: failed to create shim task"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("stat /x: no such file or directory"), std::string::npos);
}

TEST(DockerEngineError, ConflictAndInternalCarryTheEngineMessage) {
  Status c =
      EngineError("create a container from", Target::kImage, "img", 409,
                  "{\"message\":\"Conflict. The container name \\\"/n\\\" is already in use\"}");
  EXPECT_EQ(c.code(), StatusCode::kConflict);
  EXPECT_NE(c.message().find("already in use"), std::string::npos);
  Status i = EngineError("create a container from", Target::kImage, "img", 500,
                         "{\"message\":\"invalid character 'x'\"}");
  EXPECT_EQ(i.code(), StatusCode::kInternal);
  EXPECT_EQ(i.message(),
            "docker create a container from image img failed: HTTP 500: invalid character 'x'");
  Status raw = EngineError("ping", Target::kEngine, "", 502, "  bad gateway\n");
  EXPECT_NE(raw.message().find("HTTP 502: bad gateway"), std::string::npos) << raw.message();
}

TEST(DockerEngineError, NetworkNotFoundIsNotBlamedOnTheImage) {
  Status s = EngineError("create a container from", Target::kImage, "img", 404,
                         "{\"message\":\"network nosuchnet not found\"}");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("network nosuchnet not found"), std::string::npos) << s.message();
}

TEST(DockerTransportError, UnreachableEngineSaysWhereAndWhatToDo) {
  Status s = TransportError("/var/run/docker.sock", "ping", 7 /* CURLE_COULDNT_CONNECT */,
                            "Failed to connect");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "cannot reach the Docker engine at /var/run/docker.sock: Failed to connect; is dockerd "
            "running? (scripts/setup.sh starts it)");
  EXPECT_EQ(TransportError("/s", "wait", 28 /* CURLE_OPERATION_TIMEDOUT */, "").code(),
            StatusCode::kTimeout);
}

TEST(DockerClientEndpoint, AcceptsUnixAndTcpAndRejectsTheRest) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  {
    Status s;
    EXPECT_NE(DockerClient::Create(&loop, "/var/run/docker.sock", &s), nullptr);
    EXPECT_NE(DockerClient::Create(&loop, "unix:///var/run/docker.sock", &s), nullptr);
    EXPECT_NE(DockerClient::Create(&loop, "tcp://127.0.0.1:2375", &s), nullptr);
    EXPECT_EQ(DockerClient::Create(&loop, "ssh://host", &s), nullptr);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("ssh://host"), std::string::npos);
    EXPECT_EQ(DockerClient::Create(&loop, "unix://relative.sock", &s), nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(DockerClientEndpoint, DefaultHonoursDockerHost) {
  const char* saved = std::getenv("DOCKER_HOST");
  std::string saved_value = saved ? saved : "";
  unsetenv("DOCKER_HOST");
  EXPECT_EQ(DockerClient::DefaultSocketPath(), "/var/run/docker.sock");
  setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock", 1);
  EXPECT_EQ(DockerClient::DefaultSocketPath(), "unix:///run/user/1000/docker.sock");
  if (saved) {
    setenv("DOCKER_HOST", saved_value.c_str(), 1);
  } else {
    unsetenv("DOCKER_HOST");
  }
}

// The client against a scripted engine.
class DockerFakeEngine : public testing::LoopTest {
 protected:
  void BeforeLoopClose() override {
    client_.reset();
    if (server_) server_->Close();
  }
  void Serve(FakeHttpServer::Handler handler) {
    server_ = std::make_unique<FakeHttpServer>(&loop_, std::move(handler));
    client_ = DockerClient::Create(&loop_, server_->path());
    ASSERT_NE(client_, nullptr);
  }
  std::unique_ptr<FakeHttpServer> server_;
  std::unique_ptr<DockerClient> client_;
  std::vector<std::string> requests_;
};

TEST_F(DockerFakeEngine, SendsPinnedVersionJsonAndNoExpect) {
  Serve([&](const std::string& request) {
    requests_.push_back(request);
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(201, "{\"Id\":\"abc\",\"Warnings\":[]}")}};
  });
  ContainerSpec spec;
  spec.image = "img:1";
  spec.name = "n 1";
  spec.cmd = {"/bin/sh", "-c", "echo hi"};
  spec.labels = {{"ephemera.managed", "1"}};
  spec.binds = {"/opt/ephemera/shim:/ephemera/shim:ro"};
  spec.memory_bytes = 128 << 20;
  bool done = false;
  std::string id;
  client_->CreateContainer(spec, [&](Status s, std::string got) {
    EXPECT_TRUE(s.ok()) << s.message();
    id = got;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(id, "abc");
  ASSERT_EQ(requests_.size(), 1u);
  const std::string& r = requests_[0];
  EXPECT_EQ(r.rfind("POST /v1.41/containers/create?name=n%201 HTTP/1.1\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_EQ(r.find("Expect"), std::string::npos);
  EXPECT_NE(r.find("\"Image\":\"img:1\""), std::string::npos);
  EXPECT_NE(r.find("\"Binds\":[\"/opt/ephemera/shim:/ephemera/shim:ro\"]"), std::string::npos);
  EXPECT_NE(r.find("\"NetworkMode\":\"host\""), std::string::npos);
  EXPECT_NE(r.find("\"Memory\":134217728"), std::string::npos);
  EXPECT_NE(r.find("\"Labels\":{\"ephemera.managed\":\"1\"}"), std::string::npos);
}

TEST_F(DockerFakeEngine, CreateWithMissingImageIsNotFoundNamingIt) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(404, "{\"message\":\"No such image: ephemera/echo:latest\"}\n",
                                  "Content-Type: application/json\r\n")}};
  });
  ContainerSpec spec;
  spec.image = "ephemera/echo:latest";
  Status got;
  bool done = false;
  client_->CreateContainer(spec, [&](Status s, std::string) {
    got = s;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(got.code(), StatusCode::kNotFound);
  EXPECT_EQ(got.message(),
            "image ephemera/echo:latest not found: build it with make -f Makefile.docker images");
}

TEST_F(DockerFakeEngine, RelativeBindIsRefusedLaterWithoutAsking) {
  Serve([](const std::string&) { return std::vector<FakeHttpServer::Step>{}; });
  ContainerSpec spec;
  spec.image = "img";
  spec.binds = {"relative:/x"};
  Status got;
  bool done = false;
  client_->CreateContainer(spec, [&](Status s, std::string) {
    got = s;
    done = true;
  });
  EXPECT_FALSE(done);  // never from inside the call
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(got.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.message().find("relative:/x"), std::string::npos);
  EXPECT_EQ(server_->requests(), 0);
}

TEST_F(DockerFakeEngine, KillOfStoppedAndRemoveOfMissingAreOk) {
  Serve([](const std::string& request) {
    if (request.rfind("POST", 0) == 0) {
      return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(
          409, "{\"message\":\"Cannot kill container: c: Container c is not running\"}")}};
    }
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(404, "{\"message\":\"No such container: c\"}")}};
  });
  int done = 0;
  client_->KillContainer("c", [&](Status s) {
    EXPECT_TRUE(s.ok()) << s.message();
    ++done;
  });
  client_->RemoveContainer("c", [&](Status s) {
    EXPECT_TRUE(s.ok()) << s.message();
    ++done;
  });
  ASSERT_TRUE(RunUntil([&] { return done == 2; }));
}

TEST_F(DockerFakeEngine, WaitReportsWaitingBeforeExitAndReadsTheChunkedBody) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"},
        {FakeHttpServer::Chunk("{\"Error\":null,"), 20},
        {FakeHttpServer::Chunk("\"StatusCode\":3}\n") + "0\r\n\r\n", 5},
    };
  });
  std::vector<std::string> events;
  int exit_code = -1;
  client_->WaitContainer(
      "c", [&](Status s) { events.push_back(s.ok() ? "waiting" : s.message()); },
      [&](Status s, int code) {
        events.push_back(s.ok() ? "exited" : s.message());
        exit_code = code;
      });
  ASSERT_TRUE(RunUntil([&] { return events.size() == 2; }));
  EXPECT_EQ(events, (std::vector<std::string>{"waiting", "exited"}));
  EXPECT_EQ(exit_code, 3);
}

TEST_F(DockerFakeEngine, WaitOnMissingContainerFailsOnlyOnWaiting) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(404, "{\"message\":\"No such container: gone\"}")}};
  });
  Status waiting;
  int waiting_calls = 0, exit_calls = 0;
  client_->WaitContainer(
      "gone",
      [&](Status s) {
        waiting = s;
        ++waiting_calls;
      },
      [&](Status, int) { ++exit_calls; });
  ASSERT_TRUE(RunUntil([&] { return waiting_calls == 1; }));
  RunFor(10);
  EXPECT_EQ(waiting.code(), StatusCode::kNotFound);
  EXPECT_EQ(waiting.message(), "container gone not found (wait for)");
  EXPECT_EQ(exit_calls, 0);
}

TEST_F(DockerFakeEngine, AttachStreamsDemuxedChunksAfterAttached) {
  std::string stream = Frame(1, "out1\n") + Frame(2, "err1\n") + Frame(1, "out2\n");
  Serve([&](const std::string&) {
    // Like dockerd without Upgrade: 200, then raw frames until the connection closes.
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"},
        {stream.substr(0, 11), 10},
        {stream.substr(11, 9), 10},
        {stream.substr(20), 10, true},
    };
  });
  std::vector<std::string> events;
  bool ended = false;
  client_->Attach(
      "c", [&](Status s) { events.push_back(s.ok() ? "attached" : s.message()); },
      [&](StreamType t, std::string_view data) {
        events.push_back((t == StreamType::kStderr ? "err:" : "out:") + std::string(data));
      },
      [&](Status s) {
        EXPECT_TRUE(s.ok()) << s.message();
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0], "attached");
  std::string out, err;
  for (size_t i = 1; i < events.size(); ++i) {
    (events[i].rfind("err:", 0) == 0 ? err : out) += events[i].substr(4);
  }
  EXPECT_EQ(out, "out1\nout2\n");
  EXPECT_EQ(err, "err1\n");
}

TEST_F(DockerFakeEngine, CancelFromInsideOnDataStopsTheAttach) {
  Serve([&](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"},
        {Frame(1, "first\n"), 5},
        {Frame(1, "second\n"), 20},
        {Frame(1, "third\n"), 5, true},
    };
  });
  std::vector<std::string> events;
  DockerClient::RequestId attach = 0;
  attach = client_->Attach(
      "c", [&](Status s) { events.push_back(s.ok() ? "attached" : s.message()); },
      [&](StreamType, std::string_view data) {
        events.push_back(std::string(data));
        client_->Cancel(attach);  // from inside its own callback
        client_->Cancel(attach);  // twice is harmless
      },
      [&](Status) { events.push_back("end"); });
  EXPECT_NE(attach, 0u);
  ASSERT_TRUE(RunUntil([&] { return events.size() >= 2; }));
  ASSERT_TRUE(RunUntil([&] { return server_->open_connections() == 0; }));  // closed by us
  RunFor(50);
  EXPECT_EQ(events, (std::vector<std::string>{"attached", "first\n"}));
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(DockerFakeEngine, CancelledWaitNeverCallsBack) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"},
        {FakeHttpServer::Chunk("{\"StatusCode\":0}") + "0\r\n\r\n", 30}};
  });
  int waiting = 0, exited = 0;
  DockerClient::RequestId wait = client_->WaitContainer(
      "c", [&](Status) { ++waiting; }, [&](Status, int) { ++exited; });
  ASSERT_TRUE(RunUntil([&] { return waiting == 1; }));
  client_->Cancel(wait);
  RunFor(60);
  EXPECT_EQ(exited, 0);
  client_->Cancel(wait);  // already gone: harmless
}

TEST_F(DockerFakeEngine, InspectImageIsCachedAndSharedByConcurrentCallers) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(200,
                                  "{\"Id\":\"sha256:1\",\"Config\":{\"Entrypoint\":null,"
                                  "\"Cmd\":[\"/bin/sh\"],\"Env\":[\"PATH=/bin\"],"
                                  "\"WorkingDir\":\"/w\",\"User\":\"\"}}"),
         5}};
  });
  int done = 0;
  auto check = [&](Status s, const ImageConfig& c) {
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(c.id, "sha256:1");
    EXPECT_TRUE(c.entrypoint.empty());
    EXPECT_EQ(c.cmd, std::vector<std::string>{"/bin/sh"});
    EXPECT_EQ(c.env, std::vector<std::string>{"PATH=/bin"});
    EXPECT_EQ(c.working_dir, "/w");
    ++done;
  };
  client_->InspectImage("img", check);
  client_->InspectImage("img", check);
  ASSERT_TRUE(RunUntil([&] { return done == 2; }));
  client_->InspectImage("img", check);
  EXPECT_EQ(done, 2);  // the cache hit still answers later, not inside the call
  ASSERT_TRUE(RunUntil([&] { return done == 3; }));
  EXPECT_EQ(server_->requests(), 1);
  EXPECT_EQ(client_->image_inspections_sent(), 1u);
  client_->ForgetImage("img");
  client_->InspectImage("img", check);
  ASSERT_TRUE(RunUntil([&] { return done == 4; }));
  EXPECT_EQ(server_->requests(), 2);

  // Forgotten while the inspection is on its way (a rebuild raced it): not cached.
  client_->ForgetImage("img");
  client_->InspectImage("img", check);
  client_->ForgetImage("img");
  ASSERT_TRUE(RunUntil([&] { return done == 5; }));
  client_->InspectImage("img", check);
  ASSERT_TRUE(RunUntil([&] { return done == 6; }));
  EXPECT_EQ(server_->requests(), 4);
}

TEST_F(DockerFakeEngine, DestroyingTheClientDropsPendingCallbacks) {
  Serve([](const std::string&) { return std::vector<FakeHttpServer::Step>{}; });  // hold all
  int calls = 0;
  client_->WaitContainer("c", [&](Status, int) { ++calls; });
  client_->Attach(
      "c", [&](Status) { ++calls; }, [&](StreamType, std::string_view) { ++calls; },
      [&](Status) { ++calls; });
  client_->Ping([&](Status) { ++calls; });
  ASSERT_TRUE(RunUntil([&] { return server_->requests() == 3; }));
  EXPECT_EQ(client_->in_flight(), 3u);
  client_.reset();
  ASSERT_TRUE(RunUntil([&] { return server_->open_connections() == 0; }));
  EXPECT_EQ(calls, 0);
}

TEST_F(DockerFakeEngine, ACallbackMayDestroyTheClient) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "OK")}};
  });
  int calls = 0;
  client_->Ping([&](Status s) {
    EXPECT_TRUE(s.ok()) << s.message();
    ++calls;
    client_.reset();
  });
  client_->Ping([&](Status) { ++calls; });
  ASSERT_TRUE(RunUntil([&] { return calls > 0; }));
  RunFor(20);
  EXPECT_EQ(calls, 1);
}

TEST_F(DockerFakeEngine, SpeaksPlainHttpOverTcpForATcpDockerHost) {
  server_ = std::make_unique<FakeHttpServer>(
      &loop_,
      [&](const std::string& request) {
        requests_.push_back(request);
        return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "OK")}};
      },
      FakeHttpServer::Transport::kTcp);
  client_ = DockerClient::Create(&loop_, server_->path());
  ASSERT_NE(client_, nullptr);
  bool done = false;
  client_->Ping([&](Status s) {
    EXPECT_TRUE(s.ok()) << s.message();
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].rfind("GET /v1.41/_ping HTTP/1.1\r\n", 0), 0u) << requests_[0];
}

TEST_F(DockerFakeEngine, AnEngineThatNeverAnswersTimesOut) {
  Serve([](const std::string&) { return std::vector<FakeHttpServer::Step>{}; });  // hold
  client_->set_request_timeout_ms(50);
  Status got;
  bool done = false;
  client_->StartContainer("c", [&](Status s) {
    got = s;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(got.code(), StatusCode::kTimeout);
  EXPECT_NE(got.message().find("docker start container c timed out"), std::string::npos)
      << got.message();
}

TEST_F(DockerFakeEngine, UnreachableEngineIsUnavailable) {
  client_ = DockerClient::Create(&loop_, "/tmp/ephemera-no-such-docker.sock");
  Status got;
  bool done = false;
  client_->Ping([&](Status s) {
    got = s;
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(got.code(), StatusCode::kUnavailable);
  EXPECT_NE(
      got.message().find("cannot reach the Docker engine at /tmp/ephemera-no-such-docker.sock"),
      std::string::npos)
      << got.message();
  EXPECT_NE(got.message().find("is dockerd running?"), std::string::npos);
}

}  // namespace
}  // namespace ephemera::docker
