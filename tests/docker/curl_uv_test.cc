// Unit tests of CurlMulti against a fake HTTP server on a unix socket (no dockerd).
#include "runtime/docker/curl_uv.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/docker/fake_http_server.h"
#include "tests/docker/loop_fixture.h"

namespace ephemera::docker {
namespace {

using testing::FakeHttpServer;

// One easy handle for a GET on the fake server, collecting the body.
struct Get {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy{curl_easy_init(), &curl_easy_cleanup};
  std::string body;
  int done_calls = 0;
  CURLcode result = CURLE_OK;

  Get(const std::string& socket, const std::string& path) {
    curl_easy_setopt(easy.get(), CURLOPT_URL, ("http://localhost" + path).c_str());
    curl_easy_setopt(easy.get(), CURLOPT_UNIX_SOCKET_PATH, socket.c_str());
    curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, this);
    curl_easy_setopt(
        easy.get(), CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* self) {
          static_cast<Get*>(self)->body.append(d, s * n);
          return s * n;
        });
  }
  CurlMulti::DoneCallback Callback() {
    return [this](CURLcode rc) {
      ++done_calls;
      result = rc;
    };
  }
};

class DockerCurlMulti : public testing::LoopTest {
 protected:
  void BeforeLoopClose() override {
    multi_.reset();
    if (server_) server_->Close();
  }
  void Serve(FakeHttpServer::Handler handler) {
    server_ = std::make_unique<FakeHttpServer>(&loop_, std::move(handler));
  }
  std::unique_ptr<FakeHttpServer> server_;
  std::unique_ptr<CurlMulti> multi_ = nullptr;
};

TEST_F(DockerCurlMulti, CompletesOnceAndNeverFromInsideAdd) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "hello")}};
  });
  multi_ = CurlMulti::Create(&loop_);
  ASSERT_NE(multi_, nullptr);
  Get get(server_->path(), "/x");
  ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
  EXPECT_EQ(get.done_calls, 0);  // not from inside Add
  ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
  EXPECT_EQ(get.result, CURLE_OK);
  EXPECT_EQ(get.body, "hello");
  RunFor(20);  // nothing more arrives
  EXPECT_EQ(get.done_calls, 1);
  EXPECT_EQ(multi_->running(), 0u);
}

TEST_F(DockerCurlMulti, ChunkedBodyIsCompleteOnlyWhenCurlSaysDone) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
        {FakeHttpServer::Chunk("first,"), 5},
        {FakeHttpServer::Chunk("second,"), 5},
        {FakeHttpServer::Chunk("third") + "0\r\n\r\n", 5},
    };
  });
  multi_ = CurlMulti::Create(&loop_);
  Get get(server_->path(), "/chunked");
  ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
  ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
  EXPECT_EQ(get.result, CURLE_OK);
  EXPECT_EQ(get.body, "first,second,third");
  EXPECT_EQ(get.done_calls, 1);
}

TEST_F(DockerCurlMulti, ReusesTheKeptAliveConnection) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "ok")}};
  });
  multi_ = CurlMulti::Create(&loop_);
  for (int i = 0; i < 5; ++i) {
    Get get(server_->path(), "/again");
    ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
    ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
    EXPECT_EQ(get.body, "ok");
  }
  EXPECT_EQ(server_->requests(), 5);
  EXPECT_EQ(server_->connections(), 1);
}

// The server closes every connection, so curl closes each socket and the next one very
// likely gets the same fd number: each needs a fresh poll (curl_multi_assign per socket).
TEST_F(DockerCurlMulti, SurvivesSocketsClosedAndFdsReused) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(200, "bye", "Connection: close\r\n"), 0, true}};
  });
  multi_ = CurlMulti::Create(&loop_);
  for (int i = 0; i < 20; ++i) {
    Get get(server_->path(), "/close");
    ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
    ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
    EXPECT_EQ(get.result, CURLE_OK);
    EXPECT_EQ(get.body, "bye");
  }
  EXPECT_EQ(server_->connections(), 20);
}

// As when dockerd restarts: the idle kept-alive connection dies without notice, and the
// next request must not fail because of it.
TEST_F(DockerCurlMulti, ACachedConnectionThatDiedIsReplaced) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "ok"), 0, true}};
  });
  multi_ = CurlMulti::Create(&loop_);
  for (int i = 0; i < 3; ++i) {
    Get get(server_->path(), "/x");
    ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
    ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
    EXPECT_EQ(get.result, CURLE_OK) << curl_easy_strerror(get.result);
    EXPECT_EQ(get.body, "ok");
    ASSERT_TRUE(RunUntil([&] { return server_->open_connections() == 0; }));
  }
  EXPECT_EQ(server_->connections(), 3);
}

TEST_F(DockerCurlMulti, ConcurrentTransfersEachCompleteOnce) {
  int n = 0;
  Serve([&](const std::string&) {
    // Answer in reverse-ish order: later requests get shorter delays.
    return std::vector<FakeHttpServer::Step>{
        {FakeHttpServer::Response(200, "r" + std::to_string(n)),
         static_cast<uint64_t>(30 - 5 * n++)}};
  });
  multi_ = CurlMulti::Create(&loop_);
  std::vector<std::unique_ptr<Get>> gets;
  for (int i = 0; i < 5; ++i) {
    gets.push_back(std::make_unique<Get>(server_->path(), "/c"));
    ASSERT_TRUE(multi_->Add(gets.back()->easy.get(), gets.back()->Callback()).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    for (auto& g : gets)
      if (g->done_calls == 0) return false;
    return true;
  }));
  RunFor(10);
  for (auto& g : gets) {
    EXPECT_EQ(g->done_calls, 1);
    EXPECT_EQ(g->result, CURLE_OK);
    EXPECT_EQ(g->body.substr(0, 1), "r");
  }
}

TEST_F(DockerCurlMulti, RemoveDropsTheCallback) {
  Serve([](const std::string&) { return std::vector<FakeHttpServer::Step>{}; });  // hold
  multi_ = CurlMulti::Create(&loop_);
  Get get(server_->path(), "/hold");
  ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
  ASSERT_TRUE(RunUntil([&] { return server_->requests() == 1; }));
  multi_->Remove(get.easy.get());
  RunFor(20);
  EXPECT_EQ(get.done_calls, 0);
  EXPECT_EQ(multi_->running(), 0u);
}

TEST_F(DockerCurlMulti, DestroyingWithTransferInFlightRunsNoCallbackAndClosesCleanly) {
  Serve([](const std::string&) { return std::vector<FakeHttpServer::Step>{}; });  // hold
  multi_ = CurlMulti::Create(&loop_);
  Get get(server_->path(), "/hold");
  ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
  ASSERT_TRUE(RunUntil([&] { return server_->requests() == 1; }));
  multi_.reset();
  // The server sees the connection go away.
  ASSERT_TRUE(RunUntil([&] { return server_->open_connections() == 0; }));
  EXPECT_EQ(get.done_calls, 0);
  // TearDown asserts uv_loop_close() == 0.
}

TEST_F(DockerCurlMulti, CallbackMayDestroyTheMulti) {
  Serve([](const std::string&) {
    return std::vector<FakeHttpServer::Step>{{FakeHttpServer::Response(200, "x")}};
  });
  multi_ = CurlMulti::Create(&loop_);
  Get a(server_->path(), "/a"), b(server_->path(), "/b");
  int calls = 0;
  auto destroy = [&](CURLcode) {
    ++calls;
    multi_.reset();
  };
  ASSERT_TRUE(multi_->Add(a.easy.get(), destroy).ok());
  ASSERT_TRUE(multi_->Add(b.easy.get(), destroy).ok());
  ASSERT_TRUE(RunUntil([&] { return calls > 0; }));
  RunFor(20);
  EXPECT_EQ(calls, 1);  // the second transfer was dropped with the multi
}

TEST_F(DockerCurlMulti, ConnectionRefusedIsReportedOnce) {
  multi_ = CurlMulti::Create(&loop_);
  Get get("/tmp/ephemera-no-such-socket", "/x");
  ASSERT_TRUE(multi_->Add(get.easy.get(), get.Callback()).ok());
  ASSERT_TRUE(RunUntil([&] { return get.done_calls > 0; }));
  EXPECT_EQ(get.result, CURLE_COULDNT_CONNECT);
  EXPECT_EQ(get.done_calls, 1);
}

}  // namespace
}  // namespace ephemera::docker
