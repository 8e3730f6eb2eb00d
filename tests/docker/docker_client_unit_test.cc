// Unit tests of DockerClient without dockerd: stream framing, error mapping, and the
// client against a fake engine on a unix socket.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
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

// A line as Docker 20.10.24 sends it for `docker tag` (one JSON object, then "\n").
const char* kTagEventLine =
    "{\"status\":\"tag\",\"id\":\"sha256:17b8ed55a76700b060b11ff9efd2ab22236ebab810af7cb67577ba56"
    "4046708f\",\"Type\":\"image\",\"Action\":\"tag\",\"Actor\":{\"ID\":\"sha256:17b8ed55a76700b06"
    "0b11ff9efd2ab22236ebab810af7cb67577ba564046708f\",\"Attributes\":{\"ephemera-test.probe\":"
    "\"1\",\"name\":\"ephemera-test/probe:latest\"}},\"scope\":\"local\",\"time\":1796112945,"
    "\"timeNano\":1796112945894353432}";

std::string EventLine(const std::string& action, const std::string& id, const std::string& name,
                      int64_t time_nano = 1796112945894353432) {
  return "{\"status\":\"" + action + "\",\"id\":\"" + id + "\",\"Type\":\"image\",\"Action\":\"" +
         action + "\",\"Actor\":{\"ID\":\"" + id + "\",\"Attributes\":{\"name\":\"" + name +
         "\"}},\"scope\":\"local\",\"time\":" + std::to_string(time_nano / 1000000000) +
         ",\"timeNano\":" + std::to_string(time_nano) + "}\n";
}

TEST(LineSplitter, CutsLinesSplitAnywhere) {
  std::string stream = "first\n{\"a\":1}\r\n\n\nthird line\nlast";
  std::vector<std::string> want = {"first", "{\"a\":1}", "third line"};
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    SCOPED_TRACE(piece);
    LineSplitter splitter;
    std::vector<std::string> lines;
    for (size_t i = 0; i < stream.size(); i += piece) {
      splitter.Feed(std::string_view(stream).substr(i, piece), &lines);
    }
    EXPECT_EQ(lines, want);
    EXPECT_EQ(splitter.pending(), 4u);  // "last" has no newline yet
    splitter.Feed("\n", &lines);
    EXPECT_EQ(lines.back(), "last");
    EXPECT_EQ(splitter.pending(), 0u);
  }
}

TEST(LineSplitter, RandomEventsAndSplitsRoundTrip) {
  std::mt19937 rng(20261201);  // fixed seed: reproducible
  for (int round = 0; round < 100; ++round) {
    std::string stream;
    std::vector<std::string> want;
    int n = static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      std::string line = EventLine("tag", "sha256:" + std::to_string(rng()),
                                   "ephemera-test/x:" + std::to_string(i));
      stream += line;
      line.pop_back();
      want.push_back(line);
    }
    LineSplitter splitter;
    std::vector<std::string> got;
    for (size_t at = 0; at < stream.size();) {
      size_t len = std::min<size_t>(1 + rng() % 200, stream.size() - at);
      splitter.Feed(std::string_view(stream).substr(at, len), &got);
      at += len;
    }
    EXPECT_EQ(got, want) << "round " << round;
    EXPECT_EQ(splitter.pending(), 0u);
  }
}

// Fuzzing found it (tests/fuzz/findings/docker-event-time-overflow): a "time" past what
// int64 nanoseconds hold was converted anyway (undefined behaviour).
TEST(ParseEngineEvent, ATimeOutOfRangeIsNoTime) {
  auto e = ParseEngineEvent(R"({"Type":"l","time":54121456789})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->time_nano, 0);
  auto negative = ParseEngineEvent(R"({"Type":"l","time":-54121456789})");
  ASSERT_TRUE(negative.has_value());
  EXPECT_EQ(negative->time_nano, 0);
}

TEST(ParseInspect, ReadsTheFieldsAndClampsNumbersOutOfRange) {
  ContainerState st;
  ASSERT_TRUE(
      ParseContainerInspect(
          R"({"State":{"Status":"exited","OOMKilled":true,"Pid":1e30,"ExitCode":-1e30}})", &st)
          .ok());
  EXPECT_EQ(st.status, "exited");
  EXPECT_TRUE(st.oom_killed);
  EXPECT_EQ(st.pid, 2147483647);  // not undefined behaviour: the nearest int
  EXPECT_EQ(st.exit_code, -2147483647 - 1);
  EXPECT_FALSE(ParseContainerInspect(R"({"Id":"x"})", &st).ok());
  ImageConfig image;
  ASSERT_TRUE(ParseImageInspect(
                  R"({"Id":"sha256:ab","Config":{"Cmd":["a","b"],"User":"app","Env":[1]}})", &image)
                  .ok());
  EXPECT_EQ(image.id, "sha256:ab");
  EXPECT_EQ(image.cmd, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(image.user, "app");
  EXPECT_FALSE(ParseImageInspect("[]", &image).ok());
  std::vector<ContainerSummary> rows;
  ASSERT_TRUE(
      ParseContainerList(R"([{"Id":"c1","Labels":{"a":"1","b":2}},{"State":"running"}])", &rows)
          .ok());
  ASSERT_EQ(rows.size(), 1u) << "a row without an id is skipped";
  EXPECT_EQ(rows[0].labels.size(), 1u);
  EXPECT_FALSE(ParseContainerList("{}", &rows).ok());
}

TEST(ParseEngineEvent, ReadsA2010ImageEventExactly) {
  auto e = ParseEngineEvent(kTagEventLine);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->type, "image");
  EXPECT_EQ(e->action, "tag");
  EXPECT_EQ(e->id, "sha256:17b8ed55a76700b060b11ff9efd2ab22236ebab810af7cb67577ba564046708f");
  EXPECT_EQ(e->attributes.at("name"), "ephemera-test/probe:latest");
  EXPECT_EQ(e->attributes.at("ephemera-test.probe"), "1");  // image labels come along
  EXPECT_EQ(e->time_nano, 1796112945894353432);             // not rounded through a double
}

TEST(ParseEngineEvent, ReadsAContainerOomEventAndOldStyleFields) {
  auto oom = ParseEngineEvent(
      "{\"status\":\"oom\",\"id\":\"c1\",\"from\":\"img\",\"Type\":\"container\",\"Action\":"
      "\"oom\",\"Actor\":{\"ID\":\"c1\",\"Attributes\":{\"image\":\"img\",\"name\":\"n\"}},"
      "\"scope\":\"local\",\"time\":1700000000,\"timeNano\":1700000000000000001}");
  ASSERT_TRUE(oom.has_value());
  EXPECT_EQ(oom->type, "container");
  EXPECT_EQ(oom->action, "oom");
  EXPECT_EQ(oom->id, "c1");
  EXPECT_EQ(oom->attributes.at("image"), "img");
  EXPECT_EQ(oom->time_nano, 1700000000000000001);
  auto old = ParseEngineEvent("{\"status\":\"die\",\"id\":\"c2\",\"time\":1700000000}");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->action, "die");
  EXPECT_EQ(old->id, "c2");
  EXPECT_EQ(old->time_nano, 1700000000000000000);
  EXPECT_FALSE(ParseEngineEvent("not json").has_value());
  EXPECT_FALSE(ParseEngineEvent("[1,2]").has_value());
  EXPECT_FALSE(ParseEngineEvent("{\"unrelated\":1}").has_value());
}

TEST(NormalizeImageRef, GivesTheFamiliarNameWithATag) {
  EXPECT_EQ(NormalizeImageRef("busybox"), "busybox:latest");
  EXPECT_EQ(NormalizeImageRef("busybox:latest"), "busybox:latest");
  EXPECT_EQ(NormalizeImageRef("library/busybox"), "busybox:latest");
  EXPECT_EQ(NormalizeImageRef("docker.io/library/busybox:1.36"), "busybox:1.36");
  EXPECT_EQ(NormalizeImageRef("index.docker.io/ephemera/echo"), "ephemera/echo:latest");
  EXPECT_EQ(NormalizeImageRef("ephemera/echo:latest"), "ephemera/echo:latest");
  EXPECT_EQ(NormalizeImageRef("localhost:5000/echo"), "localhost:5000/echo:latest");
  EXPECT_EQ(NormalizeImageRef("registry.example.com/library/x:2"),
            "registry.example.com/library/x:2");
  EXPECT_EQ(NormalizeImageRef("busybox@sha256:abcd"), "busybox@sha256:abcd");
  EXPECT_EQ(NormalizeImageRef("sha256:abcd"), "sha256:abcd");
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

// A fake engine for the image cache: answers each inspection with the ID `ids[name]`, or
// 404 if the name has none; counts the inspections per name.
class DockerFakeImages : public DockerFakeEngine {
 protected:
  void SetUp() override {
    DockerFakeEngine::SetUp();
    Serve([this](const std::string& request) {
      std::string line = request.substr(0, request.find("\r\n"));
      requests_.push_back(line);
      const std::string prefix = "GET /v1.41/images/";
      size_t end = line.find("/json HTTP/1.1");
      if (line.rfind(prefix, 0) != 0 || end == std::string::npos) {
        return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(500, "{}")}};
      }
      std::string name = line.substr(prefix.size(), end - prefix.size());
      ++asked_[name];
      auto it = ids_.find(name);
      std::string answer =
          it == ids_.end()
              ? FakeHttpServer::Response(404, "{\"message\":\"No such image: " + name + "\"}")
              : FakeHttpServer::Response(200, "{\"Id\":\"" + it->second +
                                                  "\",\"Config\":{\"Cmd\":[\"/bin/" + it->second +
                                                  "\"]}}");
      return std::vector<FakeHttpServer::Step>{{answer, delay_ms_}};
    });
  }
  // Runs one InspectImage to its answer.
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
  std::map<std::string, std::string> ids_;
  std::map<std::string, int> asked_;
  uint64_t delay_ms_ = 0;
};

TEST_F(DockerFakeImages, ForgetImageIdDropsEveryNameOfThatIdAndARemovedImageIsNotFound) {
  ids_ = {{"a:1", "sha256:x"}, {"b:1", "sha256:x"}, {"c:1", "sha256:y"}};
  for (const char* name : {"a:1", "b:1", "c:1", "a:1", "b:1", "c:1"}) {
    EXPECT_TRUE(Inspect(name).first.ok());
  }
  EXPECT_EQ(client_->image_inspections_sent(), 3u);
  EXPECT_EQ(client_->cached_images(), 3u);
  // `docker rmi a:1` with b:1 left: the engine says "untag sha256:x", nothing more.
  ids_.erase("a:1");
  client_->ForgetImageId("sha256:x");
  EXPECT_EQ(client_->cached_images(), 1u);  // c:1 stays
  auto [gone, unused] = Inspect("a:1");
  EXPECT_EQ(gone.code(), StatusCode::kNotFound);
  EXPECT_EQ(gone.message().rfind("image a:1 not found", 0), 0u) << gone.message();
  auto [again, unused2] = Inspect("a:1");  // errors are not cached: asked again
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_EQ(asked_["a:1"], 3);
  EXPECT_EQ(Inspect("b:1").second.id, "sha256:x");
  EXPECT_EQ(asked_["b:1"], 2);
  EXPECT_EQ(Inspect("c:1").second.id, "sha256:y");
  EXPECT_EQ(asked_["c:1"], 1);  // a hit
}

TEST_F(DockerFakeImages, ForgetImageCoversEveryNameOfTheSameReference) {
  ids_ = {{"busybox", "sha256:old"},
          {"docker.io/library/busybox:latest", "sha256:old"},
          {"busybox:1", "sha256:old"}};
  Inspect("busybox");
  Inspect("docker.io/library/busybox:latest");
  Inspect("busybox:1");
  ids_["busybox"] = ids_["docker.io/library/busybox:latest"] = "sha256:new";
  client_->ForgetImage("busybox:latest");   // the name a "tag" event gives
  EXPECT_EQ(client_->cached_images(), 1u);  // busybox:1 is another tag
  EXPECT_EQ(Inspect("busybox").second.id, "sha256:new");
  EXPECT_EQ(Inspect("docker.io/library/busybox:latest").second.cmd,
            std::vector<std::string>{"/bin/sha256:new"});
  EXPECT_EQ(Inspect("busybox:1").second.id, "sha256:old");
  EXPECT_EQ(asked_["busybox:1"], 1);
}

TEST_F(DockerFakeImages, ACallAfterAForgetNeverJoinsARequestSentBeforeIt) {
  ids_ = {{"img", "sha256:old"}};
  delay_ms_ = 30;
  std::vector<std::string> got;
  client_->InspectImage("img", [&](Status, const ImageConfig& c) { got.push_back(c.id); });
  ASSERT_TRUE(RunUntil([&] { return asked_["img"] == 1; }));  // the engine has answered "old"
  ids_["img"] = "sha256:new";                                 // the rebuild
  client_->ForgetImage("img");                                // its tag event
  client_->InspectImage("img", [&](Status, const ImageConfig& c) { got.push_back(c.id); });
  ASSERT_TRUE(RunUntil([&] { return got.size() == 2; }));
  EXPECT_EQ(got, (std::vector<std::string>{"sha256:old", "sha256:new"}));
  EXPECT_EQ(asked_["img"], 2);
  delay_ms_ = 0;
  EXPECT_EQ(Inspect("img").second.id, "sha256:new");  // the fresh answer was cached
  EXPECT_EQ(asked_["img"], 2);

  // The same for an ID-wide forget (untag/delete) and for forgetting everything.
  for (int round = 0; round < 2; ++round) {
    client_->ForgetAllImages();
    delay_ms_ = 30;
    got.clear();
    int before = asked_["img"];
    client_->InspectImage("img", [&](Status, const ImageConfig& c) { got.push_back(c.id); });
    ASSERT_TRUE(RunUntil([&] { return asked_["img"] == before + 1; }));
    if (round == 0) {
      client_->ForgetImageId("sha256:unrelated");  // IDs in flight are unknown: all stale
    } else {
      client_->ForgetAllImages();
    }
    client_->InspectImage("img", [&](Status, const ImageConfig& c) { got.push_back(c.id); });
    ASSERT_TRUE(RunUntil([&] { return got.size() == 2; }));
    EXPECT_EQ(asked_["img"], before + 2);
  }
}

TEST_F(DockerFakeImages, WithTheCacheDisabledEveryCallAsks) {
  ids_ = {{"img", "sha256:1"}};
  Inspect("img");
  EXPECT_EQ(client_->cached_images(), 1u);
  client_->set_image_cache_enabled(false);
  EXPECT_FALSE(client_->image_cache_enabled());
  EXPECT_EQ(client_->cached_images(), 0u);
  int done = 0;
  for (int i = 0; i < 3; ++i)
    client_->InspectImage("img", [&](Status, const ImageConfig&) { ++done; });
  ASSERT_TRUE(RunUntil([&] { return done == 3; }));
  EXPECT_EQ(asked_["img"], 4);
  EXPECT_EQ(client_->cached_images(), 0u);
  client_->set_image_cache_enabled(true);
  Inspect("img");
  Inspect("img");
  EXPECT_EQ(asked_["img"], 5);
}

TEST_F(DockerFakeEngine, TagAndRemoveImageSpeakTheEngineApi) {
  Serve([&](const std::string& request) {
    requests_.push_back(request.substr(0, request.find("\r\n")));
    if (request.find("/nosuch") != std::string::npos) {
      return std::vector<FakeHttpServer::Step>{
          {FakeHttpServer::Response(404, "{\"message\":\"No such image: nosuch:latest\"}")}};
    }
    if (request.rfind("DELETE", 0) == 0) {
      return std::vector<FakeHttpServer::Step>{
          {FakeHttpServer::Response(200, "[{\"Untagged\":\"ephemera-test/w:latest\"}]")}};
    }
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(201, "")}};
  });
  std::vector<Status> got;
  auto record = [&](Status s) { got.push_back(s); };
  client_->TagImage("ephemera/busybox:latest", "ephemera-test/w", record);
  client_->TagImage("sha256:abc", "localhost:5000/w:v1", record);
  client_->RemoveImage("ephemera-test/w:latest", record);
  client_->TagImage("nosuch", "x:1", record);
  client_->RemoveImage("nosuch", record);
  ASSERT_TRUE(RunUntil([&] { return got.size() == 5; }));
  std::sort(requests_.begin(), requests_.end());
  EXPECT_EQ(requests_, (std::vector<std::string>{
                           "DELETE /v1.41/images/ephemera-test/w:latest HTTP/1.1",
                           "DELETE /v1.41/images/nosuch HTTP/1.1",
                           "POST /v1.41/images/ephemera/busybox:latest/tag?repo=ephemera-test%2Fw&"
                           "tag=latest HTTP/1.1",
                           "POST /v1.41/images/nosuch/tag?repo=x&tag=1 HTTP/1.1",
                           "POST /v1.41/images/sha256:abc/tag?repo=localhost%3A5000%2Fw&tag=v1 "
                           "HTTP/1.1",
                       }));
  int ok = 0;
  std::vector<std::string> errors;
  for (const Status& s : got) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kNotFound);
      errors.push_back(s.message());
    }
  }
  EXPECT_EQ(ok, 3);
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<std::string>{"image nosuch not found (remove)",
                                              "image nosuch not found (tag)"}));
}

// The event stream: chunked JSON lines, cut by the engine's chunks anywhere.
TEST_F(DockerFakeEngine, EventsDeliversLinesSplitAcrossChunksAnywhere) {
  std::string lines = EventLine("tag", "sha256:1", "a:1") +
                      EventLine("untag", "sha256:1", "sha256:1") + "\n" +
                      EventLine("delete", "sha256:1", "sha256:1", 1796112945000000007);
  // Chunk boundaries inside a line, between lines, and several lines in one chunk.
  std::vector<size_t> cuts = {1, 17, 200, 201, 202, 250, lines.size() - 3};
  Serve([&](const std::string& request) {
    requests_.push_back(request.substr(0, request.find("\r\n")));
    std::vector<FakeHttpServer::Step> steps = {
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
         "chunked\r\n\r\n"}};
    size_t at = 0;
    for (size_t cut : cuts) {
      steps.push_back({FakeHttpServer::Chunk(lines.substr(at, cut - at)), 3});
      at = cut;
    }
    steps.push_back({FakeHttpServer::Chunk(lines.substr(at)) + "0\r\n\r\n", 3});
    return steps;
  });
  std::vector<std::string> seen;
  std::vector<int64_t> times;
  bool ended = false;
  client_->Events(
      "{\"type\":[\"image\"]}", 1796112945123,
      [&](Status s) { seen.push_back(s.ok() ? "started" : s.message()); },
      [&](const EngineEvent& e) {
        seen.push_back(e.action + " " + e.id + " " + e.attributes.at("name"));
        times.push_back(e.time_nano);
      },
      [&](Status s) {
        EXPECT_TRUE(s.ok()) << s.message();
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(seen,
            (std::vector<std::string>{"started", "tag sha256:1 a:1", "untag sha256:1 sha256:1",
                                      "delete sha256:1 sha256:1"}));
  EXPECT_EQ(times.back(), 1796112945000000007);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0],
            "GET /v1.41/events?filters=%7B%22type%22%3A%5B%22image%22%5D%7D&since=1796112945."
            "123000000 HTTP/1.1");
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(DockerFakeEngine, EventsWithABadFilterFailsOnlyOnStarted) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(
        400, "{\"message\":\"invalid filter 'nope'\"}", "Content-Type: application/json\r\n")}};
  });
  Status started;
  int started_calls = 0, others = 0;
  client_->Events(
      "{\"nope\":[\"x\"]}", 0,
      [&](Status s) {
        started = s;
        ++started_calls;
      },
      [&](const EngineEvent&) { ++others; }, [&](Status) { ++others; });
  ASSERT_TRUE(RunUntil([&] { return started_calls == 1; }));
  RunFor(10);
  EXPECT_EQ(started.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(started.message().find("invalid filter 'nope'"), std::string::npos)
      << started.message();
  EXPECT_EQ(others, 0);
  // Without on_started the failure reaches on_end.
  Status end;
  bool ended = false;
  client_->Events(
      "{\"nope\":[\"x\"]}", [&](const EngineEvent&) { ++others; },
      [&](Status s) {
        end = s;
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(end.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(others, 0);
}

TEST_F(DockerFakeEngine, EventsCutByTheEngineEndsUnavailableAndSkipsJunk) {
  Serve([&](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
         0, false, true},
        {FakeHttpServer::Chunk("not an event\n" + EventLine("tag", "sha256:2", "b:2")), 2},
    };
  });
  std::vector<std::string> seen;
  Status end;
  bool ended = false;
  client_->Events(
      "", [&](const EngineEvent& e) { seen.push_back(e.action); },
      [&](Status s) {
        end = s;
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return seen.size() == 1; }));
  server_->Push(FakeHttpServer::Chunk(EventLine("untag", "sha256:2", "sha256:2")));
  ASSERT_TRUE(RunUntil([&] { return seen.size() == 2; }));
  server_->CloseStreams();  // dockerd went away mid-stream
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"tag", "untag"}));
  EXPECT_EQ(end.code(), StatusCode::kUnavailable) << end.message();
}

TEST_F(DockerFakeEngine, CancelInsideOnEventDeliveredWithTheEndRunsNothingMore) {
  // The last events and the end of the stream arrive in one write.
  Serve([&](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
         FakeHttpServer::Chunk(EventLine("tag", "sha256:3", "c:1") +
                               EventLine("tag", "sha256:3", "c:2")) +
         "0\r\n\r\n"}};
  });
  std::vector<std::string> seen;
  DockerClient::RequestId id = 0;
  id = client_->Events(
      "",
      [&](const EngineEvent& e) {
        seen.push_back(e.attributes.at("name"));
        client_->Cancel(id);
      },
      [&](Status) { seen.push_back("end"); });
  ASSERT_TRUE(RunUntil([&] { return !seen.empty(); }));
  RunFor(20);
  EXPECT_EQ(seen, std::vector<std::string>{"c:1"});
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(DockerFakeEngine, AnEventLineOverOneMebibyteEndsTheStreamTooLarge) {
  Serve([&](const std::string&) {
    std::vector<FakeHttpServer::Step> steps = {
        {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
         "chunked\r\n\r\n"}};
    for (int i = 0; i < 20; ++i)
      steps.push_back({FakeHttpServer::Chunk(std::string(64 << 10, 'x')), 1});
    return steps;
  });
  Status end;
  bool ended = false;
  int events = 0;
  client_->Events(
      "", [&](const EngineEvent&) { ++events; },
      [&](Status s) {
        end = s;
        ended = true;
      });
  ASSERT_TRUE(RunUntil([&] { return ended; }));
  EXPECT_EQ(end.code(), StatusCode::kTooLarge);
  EXPECT_EQ(end.message(), "docker events: a line longer than 1 MiB");
  EXPECT_EQ(events, 0);
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
