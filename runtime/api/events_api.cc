#include "runtime/api/events_api.h"

#include <cctype>

#include "runtime/api/aws_errors.h"
#include "runtime/core/base64.h"
#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/json/json.h"

namespace ephemera::api {
namespace {

using C = AwsErrorCode;

// How a failed Redis call looks to a client: unreachable or unanswered is 503.
http::HttpResponse RedisError(const Status& s, const std::string& request_id) {
  bool down = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout;
  return AwsError(down ? C::kServiceUnavailable : C::kService, s.message(), request_id);
}

http::HttpResponse JsonReply(int status, std::string body, const std::string& request_id) {
  http::HttpResponse r(status, std::move(body), "application/json");
  r.headers.Set("x-amzn-RequestId", request_id);
  return r;
}

// A query parameter that must be an integer in [min, max]; `fallback` when absent.
bool IntParam(const http::HttpRequest& req, const char* name, long min, long max, long fallback,
              long* out) {
  auto v = req.QueryParam(name);
  if (!v) {
    *out = fallback;
    return true;
  }
  char* end = nullptr;
  long n = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || n < min || n > max) return false;
  *out = n;
  return true;
}

bool IsPlainText(const std::string& s) {
  for (unsigned char c : s) {
    if (c == 0 || c >= 0x80) return false;
  }
  return true;
}

std::string NoConfigMessage(const std::string& function) {
  return "The function " + registry::FunctionArn(function) +
         ":$LATEST doesn't have an EventInvokeConfig";
}

}  // namespace

EventsApi::EventsApi(registry::Registry* registry, events::Events* events)
    : registry_(registry), events_(events) {}

void EventsApi::AddRoutes(http::Router& router) {
  using P = http::Router::Params;
  const std::string config = "/2019-09-25/functions/{}/event-invoke-config";
  router.Add("PUT", config, [this](const Ex& ex, const P& p) { PutConfig(ex, p[0], true); });
  router.Add("POST", config, [this](const Ex& ex, const P& p) { PutConfig(ex, p[0], false); });
  router.Add("GET", config, [this](const Ex& ex, const P& p) { GetConfig(ex, p[0], false); });
  router.Add("DELETE", config, [this](const Ex& ex, const P& p) { DeleteConfig(ex, p[0]); });
  router.Add("GET", config + "/list",
             [this](const Ex& ex, const P& p) { GetConfig(ex, p[0], true); });
  router.Add("GET", "/ephemera/invocations",
             [this](const Ex& ex, const P&) { ListInvocations(ex); });
  router.Add("GET", "/ephemera/invocations/{}",
             [this](const Ex& ex, const P& p) { GetInvocation(ex, p[0]); });
  router.Add("GET", "/ephemera/dlq", [this](const Ex& ex, const P&) { ListDeadLetters(ex); });
  router.Add("POST", "/ephemera/dlq/{}/replay",
             [this](const Ex& ex, const P& p) { ReplayDeadLetter(ex, p[0]); });
  router.Add("DELETE", "/ephemera/dlq/{}",
             [this](const Ex& ex, const P& p) { DeleteDeadLetter(ex, p[0]); });
}

std::string EventsApi::Resolve(const Ex& ex, const std::string& ref,
                               const std::string& request_id) {
  std::string name, qualifier;
  if (Status s = registry::ParseFunctionRef(ref, &name, &qualifier); !s.ok()) {
    ex->Reply(AwsError(C::kInvalidParameterValue, s.message(), request_id));
    return "";
  }
  if (auto q = ex->request().QueryParam("Qualifier"); q && !q->empty()) qualifier = *q;
  if (!registry_->Find(name)) {
    ex->Reply(AwsError(C::kResourceNotFound, "Function not found: " + registry::FunctionArn(name),
                       request_id));
    return "";
  }
  if (!qualifier.empty() && qualifier != "$LATEST") {
    ex->Reply(AwsError(C::kResourceNotFound,
                       "Function not found: " + registry::FunctionArn(name) + ":" + qualifier +
                           " (ephemera has only the $LATEST version)",
                       request_id));
    return "";
  }
  return name;
}

// ---- event invoke config ----

void EventsApi::PutConfig(const Ex& ex, const std::string& ref, bool replace) {
  std::string request_id = NewRequestId();
  std::string function = Resolve(ex, ref, request_id);
  if (function.empty()) return;
  const std::string& text = ex->request().body;
  json::Json body = json::Parse(text.empty() ? std::string_view("{}") : std::string_view(text));
  if (!body || !cJSON_IsObject(body.get())) {
    ex->Reply(AwsError(C::kInvalidRequestContent,
                       "Could not parse request body into json: expected a JSON object",
                       request_id));
    return;
  }
  auto body_ptr = std::make_shared<json::Json>(std::move(body));
  events_->GetConfig(function, [this, ex, request_id, function, replace, body_ptr](
                                   Status s, std::optional<events::EventInvokeConfig> current) {
    if (!s.ok()) return ex->Reply(RedisError(s, request_id));
    if (!replace && !current) {
      return ex->Reply(AwsError(C::kResourceNotFound, NoConfigMessage(function), request_id));
    }
    events::EventInvokeConfig config = current.value_or(events::EventInvokeConfig{});
    if (Status a = events::ApplyEventInvokeConfig(body_ptr->get(), replace, &config); !a.ok()) {
      return ex->Reply(AwsError(C::kInvalidParameterValue, a.message(), request_id));
    }
    for (const std::string* dest : {&config.on_success, &config.on_failure}) {
      if (dest->empty()) continue;
      std::string target;
      Status d = events::DestinationFunction(*dest, &target);
      if (d.ok() && target == function) {
        d = InvalidArgument("a function cannot be its own destination (" + *dest + ")");
      } else if (d.ok() && !registry_->Find(target)) {
        d = InvalidArgument("the destination function " + target + " does not exist (" + *dest +
                            ")");
      }
      if (!d.ok()) return ex->Reply(AwsError(C::kInvalidParameterValue, d.message(), request_id));
    }
    config.last_modified_s = static_cast<double>(EpochMs()) / 1000.0;
    events_->PutConfig(function, config, [ex, request_id, function, config](Status p) {
      if (!p.ok()) return ex->Reply(RedisError(p, request_id));
      ex->Reply(JsonReply(200, json::Print(events::ToApiJson(config, function).get()), request_id));
    });
  });
}

void EventsApi::GetConfig(const Ex& ex, const std::string& ref, bool as_list) {
  std::string request_id = NewRequestId();
  std::string function = Resolve(ex, ref, request_id);
  if (function.empty()) return;
  long max_items = 50;
  if (as_list && !IntParam(ex->request(), "MaxItems", 1, 50, 50, &max_items)) {
    return ex->Reply(
        AwsError(C::kInvalidParameterValue, "MaxItems must be an integer 1..50", request_id));
  }
  // There is one config per function ($LATEST only): a Marker means the page after it.
  bool past_end = as_list && ex->request().QueryParam("Marker").value_or("") != "";
  events_->GetConfig(function, [ex, request_id, function, as_list, past_end](
                                   Status s, std::optional<events::EventInvokeConfig> config) {
    if (!s.ok()) return ex->Reply(RedisError(s, request_id));
    if (!as_list) {
      if (!config) {
        return ex->Reply(AwsError(C::kResourceNotFound, NoConfigMessage(function), request_id));
      }
      return ex->Reply(
          JsonReply(200, json::Print(events::ToApiJson(*config, function).get()), request_id));
    }
    json::Json list = json::NewObject();
    cJSON* items = cJSON_AddArrayToObject(list.get(), "FunctionEventInvokeConfigs");
    if (config && !past_end) {
      cJSON_AddItemToArray(items, events::ToApiJson(*config, function).release());
    }
    ex->Reply(JsonReply(200, json::Print(list.get()), request_id));
  });
}

void EventsApi::DeleteConfig(const Ex& ex, const std::string& ref) {
  std::string request_id = NewRequestId();
  std::string function = Resolve(ex, ref, request_id);
  if (function.empty()) return;
  events_->DeleteConfig(function, [ex, request_id, function](Status s, bool existed) {
    if (!s.ok()) return ex->Reply(RedisError(s, request_id));
    if (!existed) {
      return ex->Reply(AwsError(C::kResourceNotFound, NoConfigMessage(function), request_id));
    }
    http::HttpResponse r(204, "", "");
    r.headers.Set("x-amzn-RequestId", request_id);
    ex->Reply(std::move(r));
  });
}

// ---- invocation records ----

void EventsApi::ListInvocations(const Ex& ex) {
  std::string request_id = NewRequestId();
  const http::HttpRequest& req = ex->request();
  long limit = 50;
  if (!IntParam(req, "limit", 1, 1000, 50, &limit)) {
    return ex->Reply(
        AwsError(C::kInvalidParameterValue, "limit must be an integer 1..1000", request_id));
  }
  std::string since = req.QueryParam("since").value_or("");
  for (char c : since) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return ex->Reply(AwsError(C::kInvalidParameterValue,
                                "since must be a time in epoch milliseconds", request_id));
    }
  }
  std::string function = req.QueryParam("function").value_or("");
  if (!function.empty()) {
    if (Status s = registry::ValidateName(function); !s.ok()) {
      return ex->Reply(AwsError(C::kInvalidParameterValue, s.message(), request_id));
    }
  }
  events_->ListRecords(function, static_cast<size_t>(limit), since,
                       [ex, request_id](Status s, std::vector<std::string> records) {
                         if (!s.ok()) return ex->Reply(RedisError(s, request_id));
                         std::string body = "{\"Invocations\":[";
                         for (size_t i = 0; i < records.size(); ++i) {
                           if (i > 0) body += ",";
                           body += records[i];
                         }
                         body += "]}";
                         ex->Reply(JsonReply(200, std::move(body), request_id));
                       });
}

void EventsApi::GetInvocation(const Ex& ex, const std::string& id) {
  std::string request_id = NewRequestId();
  events_->GetRecords(id, [ex, request_id, id](Status s, std::vector<std::string> records,
                                               std::map<std::string, std::string> final_state) {
    if (!s.ok()) return ex->Reply(RedisError(s, request_id));
    if (records.empty() && final_state.empty()) {
      return ex->Reply(AwsError(
          C::kResourceNotFound,
          "no invocation record for " + id + " (records are kept for a limited time and count)",
          request_id));
    }
    std::string body = "{\"id\":" + json::Quote(id) + ",\"attempts\":[";
    for (size_t i = 0; i < records.size(); ++i) {
      if (i > 0) body += ",";
      body += records[i];
    }
    body += "]";
    if (!final_state.empty()) {
      json::Json fs = json::NewObject();
      for (const auto& [k, v] : final_state)
        cJSON_AddStringToObject(fs.get(), k.c_str(), v.c_str());
      body += ",\"final_state\":" + json::Print(fs.get());
    }
    body += "}";
    ex->Reply(JsonReply(200, std::move(body), request_id));
  });
}

// ---- dead letters ----

void EventsApi::ListDeadLetters(const Ex& ex) {
  std::string request_id = NewRequestId();
  long limit = 50;
  if (!IntParam(ex->request(), "limit", 1, 1000, 50, &limit)) {
    return ex->Reply(
        AwsError(C::kInvalidParameterValue, "limit must be an integer 1..1000", request_id));
  }
  events_->ListDeadLetters(
      static_cast<size_t>(limit), [ex, request_id](Status s, std::vector<events::DeadLetter> list) {
        if (!s.ok()) return ex->Reply(RedisError(s, request_id));
        json::Json body = json::NewObject();
        cJSON* items = cJSON_AddArrayToObject(body.get(), "DeadLetters");
        for (const auto& dl : list) {
          cJSON* item = cJSON_CreateObject();
          cJSON_AddStringToObject(item, "id", dl.id.c_str());
          for (const auto& [k, v] : dl.fields) {
            if (k == "payload" && !IsPlainText(v)) {
              cJSON_AddStringToObject(item, "payload_base64", Base64Encode(v).c_str());
            } else if (k == "accepted_ms" || k == "failed_ms" || k == "attempts") {
              cJSON_AddNumberToObject(item, k.c_str(), std::strtod(v.c_str(), nullptr));
            } else if (IsPlainText(v)) {
              cJSON_AddStringToObject(item, k.c_str(), v.c_str());
            } else {
              cJSON_AddStringToObject(item, (k + "_base64").c_str(), Base64Encode(v).c_str());
            }
          }
          cJSON_AddItemToArray(items, item);
        }
        ex->Reply(JsonReply(200, json::Print(body.get()), request_id));
      });
}

void EventsApi::ReplayDeadLetter(const Ex& ex, const std::string& id) {
  std::string request_id = NewRequestId();
  events_->ReplayDeadLetter(
      id, [ex, request_id, id](Status s, std::string new_id, std::string function) {
        if (s.code() == StatusCode::kNotFound) {
          return ex->Reply(AwsError(C::kResourceNotFound, s.message(), request_id));
        }
        if (!s.ok()) return ex->Reply(RedisError(s, request_id));
        json::Json body = json::NewObject();
        cJSON_AddStringToObject(body.get(), "RequestId", new_id.c_str());
        cJSON_AddStringToObject(body.get(), "FunctionName", function.c_str());
        cJSON_AddStringToObject(body.get(), "ReplayOf", id.c_str());
        ex->Reply(JsonReply(202, json::Print(body.get()), request_id));
      });
}

void EventsApi::DeleteDeadLetter(const Ex& ex, const std::string& id) {
  std::string request_id = NewRequestId();
  events_->DeleteDeadLetter(id, [ex, request_id, id](Status s, bool existed) {
    if (!s.ok()) return ex->Reply(RedisError(s, request_id));
    if (!existed) {
      return ex->Reply(AwsError(C::kResourceNotFound, "no dead letter " + id, request_id));
    }
    http::HttpResponse r(204, "", "");
    r.headers.Set("x-amzn-RequestId", request_id);
    ex->Reply(std::move(r));
  });
}

}  // namespace ephemera::api
