// RuntimeApiServer on a real loop, driven by a blocking HTTP client (libcurl) in a
// thread, the way a runtime inside a container talks to it: one keep-alive
// connection, a long-polling /next.
#include "runtime/runtime_api/runtime_api_server.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "runtime/core/clock.h"
#include "runtime/core/uv_handle.h"

namespace ephemera::runtime_api {
namespace {

struct Reply {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  long new_connections = -1;
};

// A blocking runtime client: one CURL handle, so one keep-alive connection.
class Client {
 public:
  explicit Client(int port)
      : base_("http://127.0.0.1:" + std::to_string(port) + "/2018-06-01"),
        curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }

  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::vector<std::string>& headers = {}) {
    Reply r;
    curl_slist* list = curl_slist_append(nullptr, "Expect:");
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, (base_ + path).c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(
        curl_, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
          static_cast<Reply*>(u)->body.append(d, s * n);
          return s * n;
        });
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(
        curl_, CURLOPT_HEADERFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
          std::string line(d, s * n);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string v = line.substr(colon + 1);
            while (!v.empty() && v.front() == ' ') v.erase(0, 1);
            while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
            static_cast<Reply*>(u)->headers[line.substr(0, colon)] = v;
          }
          return s * n;
        });
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r);
    if (method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    if (curl_easy_perform(curl_) == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
      curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &r.new_connections);
    }
    curl_slist_free_all(list);
    return r;
  }

 private:
  std::string base_;
  CURL* curl_;
};

// Owns the loop and one server; runs a client script in a thread while the loop
// runs, and checks that everything closes (uv_loop_close == 0).
class RuntimeApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    RuntimeApiServer::Callbacks cb;
    cb.on_next = [this](const Event* e) {
      ++next_calls_;
      if (e == nullptr) {
        ++parked_;
        if (on_parked_) on_parked_();
      }
    };
    cb.on_response = [this](const std::string& id, std::string body, std::string type) {
      responses_.push_back(id + "|" + body + "|" + type);
    };
    cb.on_error = [this](const std::string& id, RuntimeError e) {
      errors_.push_back(id + "|" + e.error_type + "|" + e.body);
    };
    cb.on_init_error = [this](RuntimeError e) {
      init_errors_.push_back(e.error_type + "|" + e.body);
    };
    server_ = std::make_unique<RuntimeApiServer>(&loop_, std::move(cb));
    ASSERT_TRUE(server_->Listen("127.0.0.1").ok());
  }

  void TearDown() override {
    server_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Runs `script` on a thread with a client connected to the server; returns when it is done.
  void RunClient(const std::function<void(Client&)>& script) {
    uv_async_t done;
    uv_async_init(&loop_, &done, [](uv_async_t* a) { uv_stop(a->loop); });
    int port = server_->port();
    std::thread t([&] {
      Client c(port);
      script(c);
      uv_async_send(&done);
    });
    uv_run(&loop_, UV_RUN_DEFAULT);
    t.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&done), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

  static Event MakeEvent(const std::string& id, const std::string& payload) {
    Event e;
    e.request_id = id;
    e.payload = payload;
    e.timeout_ms = 5000;
    e.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:f";
    e.trace_id = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    e.client_context = "{\"custom\":{\"k\":\"v\"}}";
    return e;
  }

  uv_loop_t loop_{};
  std::unique_ptr<RuntimeApiServer> server_;
  std::function<void()> on_parked_;
  int next_calls_ = 0;
  int parked_ = 0;
  std::vector<std::string> responses_, errors_, init_errors_;
};

TEST_F(RuntimeApiTest, NextBlocksUntilEventArrives) {
  // Deliver only once the runtime is parked on /next, 30 ms later.
  Timer later(&loop_);
  on_parked_ = [&] { later.Start(30, [&] { server_->Deliver(MakeEvent("req-1", "{\"x\":1}")); }); };
  Reply next;
  int64_t asked_at = 0;
  RunClient([&](Client& c) {
    asked_at = EpochMs();
    next = c.Call("GET", "/runtime/invocation/next");
  });
  EXPECT_EQ(parked_, 1) << "the /next request did not wait for the event";
  ASSERT_EQ(next.status, 200);
  EXPECT_EQ(next.body, "{\"x\":1}");
  EXPECT_EQ(next.headers["Lambda-Runtime-Aws-Request-Id"], "req-1");
  EXPECT_EQ(next.headers["Lambda-Runtime-Invoked-Function-Arn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f");
  EXPECT_EQ(next.headers["Lambda-Runtime-Client-Context"], "{\"custom\":{\"k\":\"v\"}}");
  EXPECT_FALSE(next.headers["Lambda-Runtime-Trace-Id"].empty());
  EXPECT_EQ(next.headers["Content-Type"], "application/json");
  long long deadline = std::stoll(next.headers["Lambda-Runtime-Deadline-Ms"]);
  EXPECT_GE(deadline, asked_at + 5000);
  EXPECT_LE(deadline, EpochMs() + 5000);
}

TEST_F(RuntimeApiTest, QueuedEventIsHandedOutImmediately) {
  server_->Deliver(MakeEvent("req-2", "payload"));
  Reply next;
  RunClient([&](Client& c) { next = c.Call("GET", "/runtime/invocation/next"); });
  EXPECT_EQ(parked_, 0);
  EXPECT_EQ(next.body, "payload");
}

TEST_F(RuntimeApiTest, ResponseForUnknownRequestIdIs400) {
  Reply r;
  RunClient(
      [&](Client& c) { r = c.Call("POST", "/runtime/invocation/not-a-request/response", "x"); });
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("\"errorType\":\"InvalidRequestID\""), std::string::npos) << r.body;
  EXPECT_TRUE(responses_.empty());
}

TEST_F(RuntimeApiTest, SecondResponseForSameIdIs400AndConnectionIsReused) {
  server_->Deliver(MakeEvent("req-3", "{}"));
  Reply next, first, second;
  RunClient([&](Client& c) {
    next = c.Call("GET", "/runtime/invocation/next");
    first = c.Call("POST", "/runtime/invocation/req-3/response", "result",
                   {"Content-Type: text/plain"});
    second = c.Call("POST", "/runtime/invocation/req-3/response", "again");
  });
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.body, "{\"status\":\"OK\"}\n");
  EXPECT_EQ(second.status, 400);
  EXPECT_EQ(first.new_connections, 0) << "keep-alive: the runtime's connection must be reused";
  ASSERT_EQ(responses_.size(), 1u);
  EXPECT_EQ(responses_[0], "req-3|result|text/plain");
}

TEST_F(RuntimeApiTest, ErrorTakesTypeFromHeaderThenBody) {
  server_->Deliver(MakeEvent("a", "{}"));
  server_->Deliver(MakeEvent("b", "{}"));
  RunClient([&](Client& c) {
    c.Call("GET", "/runtime/invocation/next");
    c.Call("POST", "/runtime/invocation/a/error",
           "{\"errorMessage\":\"m\",\"errorType\":\"FromBody\"}",
           {"Lambda-Runtime-Function-Error-Type: Function.FromHeader"});
    c.Call("GET", "/runtime/invocation/next");
    c.Call("POST", "/runtime/invocation/b/error",
           "{\"errorMessage\":\"m\",\"errorType\":\"FromBody\"}");
  });
  ASSERT_EQ(errors_.size(), 2u);
  EXPECT_EQ(errors_[0].substr(0, 22), "a|Function.FromHeader|");
  EXPECT_EQ(errors_[1].substr(0, 11), "b|FromBody|");
}

TEST_F(RuntimeApiTest, InitErrorIsReported) {
  Reply r;
  RunClient([&](Client& c) {
    r = c.Call("POST", "/runtime/init/error",
               "{\"errorMessage\":\"no handler\",\"errorType\":\"Runtime.NoSuchHandler\"}");
  });
  EXPECT_EQ(r.status, 202);
  ASSERT_EQ(init_errors_.size(), 1u);
  EXPECT_EQ(init_errors_[0].substr(0, 22), "Runtime.NoSuchHandler|");
}

TEST_F(RuntimeApiTest, ResponseOverSixMegabytesIs413) {
  server_->Deliver(MakeEvent("big", "{}"));
  Reply r;
  RunClient([&](Client& c) {
    c.Call("GET", "/runtime/invocation/next");
    r = c.Call("POST", "/runtime/invocation/big/response",
               std::string(kMaxRuntimeResponseBytes + 1, 'x'));
  });
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("RequestEntityTooLarge"), std::string::npos) << r.body;
  EXPECT_TRUE(responses_.empty());
}

TEST_F(RuntimeApiTest, UnknownPathIs404InRuntimeApiShape) {
  Reply r;
  RunClient([&](Client& c) { r = c.Call("GET", "/runtime/nothing"); });
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"errorType\""), std::string::npos);
}

TEST_F(RuntimeApiTest, StreamingResponseModeIsRefused) {
  server_->Deliver(MakeEvent("s", "{}"));
  Reply r;
  RunClient([&](Client& c) {
    c.Call("GET", "/runtime/invocation/next");
    r = c.Call("POST", "/runtime/invocation/s/response", "x",
               {"Lambda-Runtime-Function-Response-Mode: streaming"});
  });
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("InvalidFunctionResponseMode"), std::string::npos);
}

}  // namespace
}  // namespace ephemera::runtime_api
