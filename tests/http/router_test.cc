// Tests of Router: matching and dispatch, pushed through without a socket.
#include "runtime/http/router.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace ephemera::http {
namespace {

std::shared_ptr<HttpExchange> MakeExchange(std::string method, std::string path,
                                           std::optional<HttpResponse>* reply = nullptr) {
  HttpRequest req;
  req.method = std::move(method);
  req.path = std::move(path);
  req.target = req.path;
  if (reply == nullptr) return std::make_shared<HttpExchange>(std::move(req));
  return std::make_shared<HttpExchange>(std::move(req),
                                        [reply](HttpResponse r) { *reply = std::move(r); });
}

TEST(Router, MatchFillsParamsInOrder) {
  Router::Params params;
  EXPECT_TRUE(Router::Match("/2015-03-31/functions/{}/invocations",
                            "/2015-03-31/functions/hello/invocations", &params));
  EXPECT_EQ(params, (Router::Params{"hello"}));
  EXPECT_TRUE(Router::Match("/a/{}/b/{}", "/a/1/b/2", &params));
  EXPECT_EQ(params, (Router::Params{"1", "2"}));
  EXPECT_TRUE(Router::Match("/", "/", &params));
  EXPECT_TRUE(params.empty());
}

TEST(Router, MatchRequiresWholeNonEmptySegments) {
  Router::Params params;
  EXPECT_FALSE(Router::Match("/a/{}", "/a/", &params));
  EXPECT_FALSE(Router::Match("/a/{}", "/a", &params));
  EXPECT_FALSE(Router::Match("/a/{}", "/a/x/y", &params));
  EXPECT_FALSE(Router::Match("/a", "/a/", &params));
  EXPECT_FALSE(Router::Match("/a", "/ab", &params));
  EXPECT_FALSE(Router::Match("/ab", "/a", &params));
  EXPECT_FALSE(Router::Match("/a/b", "/a", &params));
  EXPECT_FALSE(Router::Match("/{}", "/", &params));
  EXPECT_TRUE(params.empty()) << "a failed match leaves no params behind";
}

TEST(Router, FirstMatchWins) {
  Router router;
  std::string hit;
  Router::Params got;
  router.Add("GET", "/functions/special", [&](auto&, const Router::Params&) { hit = "special"; });
  router.Add("GET", "/functions/{}", [&](auto&, const Router::Params& p) {
    hit = "param";
    got = p;
  });
  router.Add("GET", "/functions/{}", [&](auto&, const Router::Params&) { hit = "shadowed"; });

  router.Dispatch(MakeExchange("GET", "/functions/special"));
  EXPECT_EQ(hit, "special");
  router.Dispatch(MakeExchange("GET", "/functions/other"));
  EXPECT_EQ(hit, "param");
  EXPECT_EQ(got, (Router::Params{"other"}));
}

TEST(Router, MethodSelectsAmongRoutesWithTheSamePattern) {
  Router router;
  std::string hit;
  router.Add("GET", "/f/{}", [&](auto&, const Router::Params&) { hit = "get"; });
  router.Add("DELETE", "/f/{}", [&](auto&, const Router::Params&) { hit = "delete"; });
  router.Dispatch(MakeExchange("DELETE", "/f/x"));
  EXPECT_EQ(hit, "delete");
  router.Dispatch(MakeExchange("GET", "/f/x"));
  EXPECT_EQ(hit, "get");
}

TEST(Router, FallbackGets404ForUnknownPathAnd405ForWrongMethod) {
  Router router;
  int fallback_status = 0;
  bool handled = false;
  router.Add("POST", "/f/{}/invocations", [&](auto&, const Router::Params&) { handled = true; });
  router.SetFallback(
      [&](const std::shared_ptr<HttpExchange>&, int status) { fallback_status = status; });
  router.Dispatch(MakeExchange("GET", "/nope"));
  EXPECT_EQ(fallback_status, 404);
  router.Dispatch(MakeExchange("GET", "/f/x/invocations"));
  EXPECT_EQ(fallback_status, 405);
  EXPECT_FALSE(handled);
}

TEST(Router, DefaultFallbackReplies404And405WithAllow) {
  Router router;
  router.Add("POST", "/f/{}", [](auto&, const Router::Params&) {});
  router.Add("DELETE", "/f/{}", [](auto&, const Router::Params&) {});
  std::optional<HttpResponse> reply;
  router.Dispatch(MakeExchange("GET", "/g", &reply));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 404);

  reply.reset();
  router.Dispatch(MakeExchange("GET", "/f/1", &reply));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 405);
  EXPECT_EQ(reply->headers.Get("Allow"), "POST, DELETE");
}

TEST(Router, HeadIsServedByTheGetRoute) {
  Router router;
  std::string hit;
  router.Add("GET", "/healthz", [&](auto&, const Router::Params&) { hit = "get"; });
  router.Add("POST", "/f", [&](auto&, const Router::Params&) { hit = "post"; });
  router.Dispatch(MakeExchange("HEAD", "/healthz"));
  EXPECT_EQ(hit, "get");
  std::optional<HttpResponse> reply;
  router.Dispatch(MakeExchange("HEAD", "/f", &reply));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 405);
}

TEST(Router, SinkMayDropTheLastReferenceToTheExchange) {
  // Reply() must touch nothing after handing the response over; ASan checks.
  std::vector<std::shared_ptr<HttpExchange>> owners;
  int replies = 0;
  HttpRequest req;
  req.method = "GET";
  req.path = "/";
  owners.push_back(std::make_shared<HttpExchange>(std::move(req), [&](HttpResponse) {
    ++replies;
    owners.clear();
  }));
  HttpExchange* raw = owners[0].get();
  raw->Reply(HttpResponse(200, "x"));
  EXPECT_EQ(replies, 1);
  EXPECT_TRUE(owners.empty());
}

TEST(Router, ExchangeWithoutConnectionHandsItsReplyToTheSink) {
  std::optional<HttpResponse> reply;
  auto ex = MakeExchange("GET", "/", &reply);
  EXPECT_TRUE(ex->waiting());
  ex->Reply(HttpResponse(201, "made"));
  ex->Reply(HttpResponse(500, "ignored"));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, "made");
  EXPECT_TRUE(ex->replied());
  EXPECT_FALSE(ex->waiting());
}

}  // namespace
}  // namespace ephemera::http
