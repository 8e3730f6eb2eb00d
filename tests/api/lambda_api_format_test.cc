// The shapes the Lambda API promises: the AWS error body and headers, the log
// tail, and the Server-Timing header.
#include <gtest/gtest.h>

#include "runtime/api/aws_errors.h"
#include "runtime/api/lambda_api.h"
#include "runtime/core/base64.h"

namespace ephemera::api {
namespace {

TEST(AwsError, BodyAndHeadersFollowAws) {
  http::HttpResponse r =
      AwsError(AwsErrorCode::kResourceNotFound, "Function not found: x", "req-1");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "{\"Type\":\"User\",\"Message\":\"Function not found: x\"}");
  EXPECT_EQ(r.headers.Get("x-amzn-ErrorType").value_or(""), "ResourceNotFoundException");
  EXPECT_EQ(r.headers.Get("x-amzn-RequestId").value_or(""), "req-1");
  EXPECT_EQ(r.headers.Get("Content-Type").value_or(""), "application/json");
}

TEST(AwsError, ThrottleCarriesReasonAndRetryAfter) {
  http::HttpResponse r = AwsError(ForOutcome(sandbox::OutcomeKind::kThrottled), "Rate Exceeded.",
                                  "req-2", "ReservedFunctionConcurrentInvocationLimitExceeded");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.Get("x-amzn-ErrorType").value_or(""), "TooManyRequestsException");
  EXPECT_EQ(r.headers.Get("Retry-After").value_or(""), "1");
  EXPECT_NE(r.body.find("\"Reason\":\"ReservedFunctionConcurrentInvocationLimitExceeded\""),
            std::string::npos);
}

TEST(AwsError, EveryServiceOutcomeHasOneCode) {
  using sandbox::OutcomeKind;
  EXPECT_EQ(Describe(ForOutcome(OutcomeKind::kImageNotReady)).http_status, 502);
  EXPECT_STREQ(Describe(ForOutcome(OutcomeKind::kImageNotReady)).error_type,
               "ResourceNotReadyException");
  EXPECT_EQ(Describe(ForOutcome(OutcomeKind::kEngineUnavailable)).http_status, 503);
  EXPECT_STREQ(Describe(ForOutcome(OutcomeKind::kEngineUnavailable)).fault, "Service");
  EXPECT_EQ(Describe(ForOutcome(OutcomeKind::kEngineFailed)).http_status, 502);
  EXPECT_EQ(Describe(ForOutcome(OutcomeKind::kInternal)).http_status, 500);
}

TEST(LogResult, HasLambdaLinesAndKeepsTheLastFourKilobytes) {
  sandbox::InvokeOutcome out;
  out.logs = std::string(10000, 'x') + "last line\n";
  out.phases.handler = 12.345;
  out.memory_mb = 128;
  out.max_memory_used_mb = 3;
  out.init_duration_ms = 1.5;
  auto text = Base64Decode(LogResult("id-1", out));
  ASSERT_TRUE(text.has_value());
  EXPECT_LE(text->size(), 4096u);
  EXPECT_NE(text->find("last line\nEND RequestId: id-1\n"), std::string::npos);
  EXPECT_NE(text->find("REPORT RequestId: id-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
                       "Memory Size: 128 MB\tMax Memory Used: 3 MB\tInit Duration: 1.50 ms"),
            std::string::npos)
      << *text;
  // The head was cut, not the tail.
  EXPECT_EQ(text->find("START RequestId"), std::string::npos);
}

TEST(LogResult, ShortLogsKeepStart) {
  sandbox::InvokeOutcome out;
  out.logs = "hello";
  out.phases.handler = 1;
  auto text = Base64Decode(LogResult("id-2", out));
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->rfind("START RequestId: id-2 Version: $LATEST\nhello\nEND RequestId: id-2\n", 0),
            0u)
      << *text;
}

TEST(ServerTiming, ListsKnownPhasesInOrder) {
  sandbox::PhaseTimes p;
  p.image = 0.1;
  p.create = 8.4;
  p.start = 181.2;
  p.init = 1.3;
  p.handler = 0.4;
  p.total = 192.0;
  EXPECT_EQ(p.ServerTiming(),
            "image;dur=0.1, create;dur=8.4, start;dur=181.2, init;dur=1.3, handler;dur=0.4, "
            "overhead;dur=0.6, total;dur=192.0");
  sandbox::PhaseTimes partial;
  partial.image = 1;
  partial.total = 3;
  EXPECT_EQ(partial.ServerTiming(), "image;dur=1.0, overhead;dur=2.0, total;dur=3.0");
}

}  // namespace
}  // namespace ephemera::api
