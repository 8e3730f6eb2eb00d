#include "runtime/cli/events_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/json/json.h"

namespace ephemera::cli {
namespace {

struct Answer {
  long status = 0;
  std::string body;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Answer*>(user)->body.append(data, size * n);
  return size * n;
}

// One request; false (with a message printed) if the daemon could not be reached.
bool Request(const std::string& method, const std::string& url, Answer* answer) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, answer);
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 30L);
  if (method == "POST") curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, "");
  CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    std::fprintf(stderr,
                 "ephemera: cannot reach the daemon at %s: %s (is `ephemera serve` running?)\n",
                 url.c_str(), curl_easy_strerror(rc));
    return false;
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &answer->status);
  return true;
}

// An error answer, printed with the daemon's message; returns the exit code 2.
int Failed(const Answer& a) {
  auto j = json::Parse(a.body);
  std::string message = j ? json::GetString(j.get(), "Message").value_or(a.body) : a.body;
  std::fprintf(stderr, "ephemera: HTTP %ld: %s\n", a.status, message.c_str());
  return 2;
}

std::string Escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e != nullptr ? e : "";
  curl_free(e);
  return out;
}

std::string Time(double epoch_ms) {
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(static_cast<long long>(epoch_ms) % 1000));
  return buf;
}

// One line per record: end time (UTC), function, type#attempt, status, start, total ms,
// error type, request id.
void PrintRecord(const cJSON* r) {
  const cJSON* phases = cJSON_GetObjectItem(r, "phases_ms");
  double total = json::GetNumber(phases, "total").value_or(-1);
  std::string type = json::GetString(r, "type").value_or("?");
  int attempt = static_cast<int>(json::GetNumber(r, "attempt").value_or(1));
  if (type == "Event") {
    // Two appends: GCC 12 -O3 warns (-Wrestrict, a false positive) on "#" + std::string.
    type += '#';
    type += std::to_string(attempt);
  }
  char total_text[32] = "-";
  if (total >= 0) std::snprintf(total_text, sizeof total_text, "%.1f ms", total);
  std::printf("%s  %-16s %-16s %-14s %-5s %10s  %s%s%s\n",
              Time(json::GetNumber(r, "ended_ms").value_or(0)).c_str(),
              json::GetString(r, "function").value_or("?").c_str(), type.c_str(),
              json::GetString(r, "status").value_or("?").c_str(),
              json::GetString(r, "start").value_or("-").c_str(), total_text,
              json::GetString(r, "id").value_or("?").c_str(),
              json::GetString(r, "error_type") ? "  " : "",
              json::GetString(r, "error_type").value_or("").substr(0, 120).c_str());
  std::fflush(stdout);
}

std::string RecordKey(const cJSON* r) {
  return json::GetString(r, "id").value_or("") + "/" +
         std::to_string(static_cast<long long>(json::GetNumber(r, "attempt").value_or(0))) + "/" +
         std::to_string(static_cast<long long>(json::GetNumber(r, "started_ms").value_or(0)));
}

}  // namespace

int Invocations(const InvocationsOptions& o) {
  std::string base = o.endpoint + "/ephemera/invocations?limit=" + std::to_string(o.limit);
  if (!o.function.empty()) base += "&function=" + Escape(o.function);
  Answer a;
  if (!Request("GET", base, &a)) return 2;
  if (a.status != 200) return Failed(a);
  auto j = json::Parse(a.body);
  const cJSON* list = cJSON_GetObjectItem(j.get(), "Invocations");
  // Newest first from the daemon; printed oldest first, as a log reads.
  std::vector<const cJSON*> records;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, list) {
    records.insert(records.begin(), item);
  }
  std::set<std::string> seen;
  double since = 0;
  for (const cJSON* r : records) {
    PrintRecord(r);
    seen.insert(RecordKey(r));
    since = std::max(since, json::GetNumber(r, "ended_ms").value_or(0));
  }
  if (!o.follow) return 0;
  if (since == 0) {
    since = static_cast<double>(std::time(nullptr)) * 1000.0 - 1000.0;
  }
  for (;;) {
    usleep(500 * 1000);  // a polling client: the daemon has no push stream
    Answer next;
    std::string url = base + "&since=" + std::to_string(static_cast<long long>(since));
    if (!Request("GET", url, &next)) return 2;
    if (next.status != 200) return Failed(next);
    auto nj = json::Parse(next.body);
    const cJSON* r = nullptr;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(nj.get(), "Invocations")) {
      if (!seen.insert(RecordKey(r)).second) continue;
      PrintRecord(r);
      since = std::max(since, json::GetNumber(r, "ended_ms").value_or(0));
    }
    // Records that ended in the same millisecond as `since` come again: `seen` drops them.
    if (seen.size() > 100000) seen.clear();
  }
}

int DlqList(const std::string& endpoint, int limit, bool as_json) {
  Answer a;
  if (!Request("GET", endpoint + "/ephemera/dlq?limit=" + std::to_string(limit), &a)) return 2;
  if (a.status != 200) return Failed(a);
  if (as_json) {
    std::printf("%s\n", a.body.c_str());
    return 0;
  }
  auto j = json::Parse(a.body);
  const cJSON* list = cJSON_GetObjectItem(j.get(), "DeadLetters");
  if (cJSON_GetArraySize(list) == 0) {
    std::printf("no dead letters\n");
    return 0;
  }
  std::printf("%-18s %-16s %-36s %-17s %-8s %s\n", "ID", "FUNCTION", "REQUEST ID", "CONDITION",
              "ATTEMPTS", "ERROR");
  const cJSON* d = nullptr;
  cJSON_ArrayForEach(d, list) {
    std::printf("%-18s %-16s %-36s %-17s %-8d %s\n", json::GetString(d, "id").value_or("?").c_str(),
                json::GetString(d, "function").value_or("?").c_str(),
                json::GetString(d, "request_id").value_or("?").c_str(),
                json::GetString(d, "condition").value_or("?").c_str(),
                static_cast<int>(json::GetNumber(d, "attempts").value_or(0)),
                json::GetString(d, "error_type").value_or("").c_str());
  }
  return 0;
}

int DlqReplay(const std::string& endpoint, const std::string& id) {
  Answer a;
  if (!Request("POST", endpoint + "/ephemera/dlq/" + Escape(id) + "/replay", &a)) return 2;
  if (a.status != 202) return Failed(a);
  auto j = json::Parse(a.body);
  std::printf("replayed %s as Event invocation %s of %s\n", id.c_str(),
              json::GetString(j.get(), "RequestId").value_or("?").c_str(),
              json::GetString(j.get(), "FunctionName").value_or("?").c_str());
  return 0;
}

}  // namespace ephemera::cli
