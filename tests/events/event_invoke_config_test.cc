// Tests of the event invoke config and destination record shapes (runtime/events), pure.
#include "runtime/events/event_invoke_config.h"

#include <gtest/gtest.h>

#include "runtime/events/invocation_record.h"
#include "runtime/json/json.h"

namespace ephemera::events {
namespace {

Status Apply(const char* body, bool replace, EventInvokeConfig* c) {
  auto j = json::Parse(body);
  return ApplyEventInvokeConfig(j.get(), replace, c);
}

TEST(EventInvokeConfig, PutReplacesAndUpdateMerges) {
  EventInvokeConfig c;
  ASSERT_TRUE(Apply(R"({"MaximumRetryAttempts":1,"DestinationConfig":{"OnSuccess":{"Destination":
      "arn:aws:lambda:us-east-1:123456789012:function:sink"}}})",
                    true, &c)
                  .ok());
  EXPECT_EQ(c.retries(), 1);
  EXPECT_EQ(c.max_age_s(), 21600);
  EXPECT_EQ(c.on_success, "arn:aws:lambda:us-east-1:123456789012:function:sink");
  ASSERT_TRUE(Apply(R"({"MaximumEventAgeInSeconds":60})", false, &c).ok());
  EXPECT_EQ(c.retries(), 1) << "update keeps what it does not name";
  EXPECT_EQ(c.max_age_s(), 60);
  EXPECT_FALSE(c.on_success.empty());
  ASSERT_TRUE(Apply(R"({"MaximumEventAgeInSeconds":120})", true, &c).ok());
  EXPECT_EQ(c.retries(), 2) << "put resets what it does not name";
  EXPECT_TRUE(c.on_success.empty());
}

TEST(EventInvokeConfig, RefusesOutOfRangeUnknownAndNonLambdaDestinations) {
  EventInvokeConfig c;
  for (
      const char* bad :
      {R"({"MaximumRetryAttempts":3})", R"({"MaximumRetryAttempts":1.5})",
       R"({"MaximumEventAgeInSeconds":59})", R"({"MaximumEventAgeInSeconds":21601})",
       R"({"Retries":1})",
       R"({"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:sqs:us-east-1:123456789012:q"}}})",
       R"({"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:lambda:us-east-1:123456789012:function:f:7"}}})",
       R"({"DestinationConfig":{"Elsewhere":{}}})"}) {
    Status s = Apply(bad, true, &c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  Status s = Apply(R"({"MaximumRetryAttempts":3})", true, &c);
  EXPECT_NE(s.message().find("MaximumRetryAttempts must be an integer 0..2"), std::string::npos)
      << s.message();
}

TEST(EventInvokeConfig, ApiShapeIsBotocores) {
  EventInvokeConfig c;
  c.maximum_retry_attempts = 0;
  c.on_failure = "arn:aws:lambda:us-east-1:000000000000:function:sink";
  c.last_modified_s = 1700000000.5;
  auto j = ToApiJson(c, "crash");
  EXPECT_EQ(json::GetString(j.get(), "FunctionArn"),
            "arn:aws:lambda:us-east-1:000000000000:function:crash:$LATEST");
  EXPECT_EQ(json::GetNumber(j.get(), "LastModified"), 1700000000.5);
  EXPECT_EQ(json::GetNumber(j.get(), "MaximumRetryAttempts"), 0);
  EXPECT_EQ(cJSON_GetObjectItem(j.get(), "MaximumEventAgeInSeconds"), nullptr);
  const cJSON* dc = cJSON_GetObjectItem(j.get(), "DestinationConfig");
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(dc, "OnSuccess")));
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(dc, "OnFailure"), "Destination"), c.on_failure);
  EventInvokeConfig back;
  ASSERT_TRUE(FromStored(ToStored(c), &back).ok());
  EXPECT_EQ(back, c);
}

TEST(DestinationRecord, EmbedsJsonPayloadsAndQuotesOthers) {
  DestinationInput in;
  in.request_id = "r1";
  in.function = "f";
  in.condition = "EventAgeExceeded";
  in.approximate_invoke_count = 3;
  in.request_payload = "{\"a\":1}";
  in.function_error = true;
  in.response_payload = "not json";
  in.timestamp_ms = 1700000000123;
  auto j = json::Parse(DestinationRecord(in));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetString(j.get(), "timestamp"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(json::GetNumber(cJSON_GetObjectItem(j.get(), "requestPayload"), "a"), 1);
  EXPECT_EQ(json::GetString(j.get(), "responsePayload"), "not json");
  EXPECT_EQ(
      json::GetNumber(cJSON_GetObjectItem(j.get(), "requestContext"), "approximateInvokeCount"), 3);
}

}  // namespace
}  // namespace ephemera::events
