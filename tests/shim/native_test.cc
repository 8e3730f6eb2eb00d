// tests/shim/native_test.cc: ephemera::native::Serve against a fake Runtime API, in-process.
#include "shim/native.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <thread>

#include "shim/json.h"
#include "tests/shim/fake_runtime_api.h"

namespace ephemera::native {
namespace {

using shim::testing::FakeRequest;
using shim::testing::FakeRuntimeApi;

TEST(Native, ServesSuccessFailureAndExceptionsThenReturnsWhenTheApiGoesAway) {
  std::string binary("\x00\x01\xff\xfe", 4);
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{binary, "fail", "throw"});
  setenv("AWS_LAMBDA_RUNTIME_API", api->endpoint().c_str(), 1);
  Context seen;
  int result = -1;
  std::thread serving([&] {
    result = Serve([&](std::string_view event, const Context& context) {
      if (event == "fail") return Result::Failure("Function.BadInput", "no good");
      if (event == "throw") throw std::runtime_error("boom");
      seen = context;
      return Result::Success(std::string(event), "application/octet-stream");
    });
  });
  FakeRequest post;
  ASSERT_TRUE(api->WaitForPost("/invocation/req-1/response", &post));
  EXPECT_EQ(post.body, binary);
  EXPECT_EQ(post.Header("Content-Type"), "application/octet-stream");
  ASSERT_TRUE(api->WaitForPost("/invocation/req-2/error", &post));
  EXPECT_EQ(post.Header("Lambda-Runtime-Function-Error-Type"), "Function.BadInput");
  shim::JsonValue body;
  ASSERT_TRUE(shim::JsonValue::Parse(post.body, &body, nullptr));
  EXPECT_EQ(*body.FindString("errorMessage"), "no good");
  ASSERT_TRUE(api->WaitForPost("/invocation/req-3/error", &post));
  EXPECT_NE(post.body.find("Function.UncaughtException"), std::string::npos);
  EXPECT_NE(post.body.find("boom"), std::string::npos);

  EXPECT_EQ(seen.request_id, "req-1");
  EXPECT_EQ(seen.deadline_ms, 4102444800000LL);
  EXPECT_EQ(seen.trace_id, "Root=1-test");
  EXPECT_GT(seen.RemainingMs(), 0);
  EXPECT_STREQ(getenv("_X_AMZN_TRACE_ID"), "Root=1-test");

  api.reset();  // the daemon goes away: the next connection is refused, so Serve gives up
  serving.join();
  EXPECT_EQ(result, 3);
}

TEST(Native, ReachesTheRuntimeApiOverAUnixSocketWhenTheSocketVariableIsSet) {
  std::string socket_path = "/tmp/ephemera-native-test-" + std::to_string(getpid()) + ".sock";
  FakeRuntimeApi::Options options;
  options.unix_path = socket_path;
  auto api = std::make_unique<FakeRuntimeApi>(std::vector<std::string>{"over unix"}, options);
  setenv("EPHEMERA_RUNTIME_SOCKET", socket_path.c_str(), 1);
  setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1", 1);  // must not be used
  int result = -1;
  std::thread serving([&] {
    result = Serve([](std::string_view event, const Context&) {
      return Result::Success(std::string(event) + "!", "text/plain");
    });
  });
  FakeRequest post;
  ASSERT_TRUE(api->WaitForPost("/invocation/req-1/response", &post));
  EXPECT_EQ(post.body, "over unix!");
  EXPECT_EQ(post.Header("Host"), "localhost");
  api.reset();
  serving.join();
  EXPECT_EQ(result, 3);
  unsetenv("EPHEMERA_RUNTIME_SOCKET");
}

}  // namespace
}  // namespace ephemera::native
