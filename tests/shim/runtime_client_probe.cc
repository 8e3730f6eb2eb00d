// tests/shim/runtime_client_probe.cc: a minimal Runtime API client for the shim's process
// tests, built on the shim's own HTTP client. It reads AWS_LAMBDA_RUNTIME_API only (so it
// always goes through the shim's proxy when one is set up). Behaviours (argv[1]):
//   hang    GET /next, log "probe: got <request id>" on stderr, then sleep until killed
//   invoke  per event: POST it to /2015-03-31/functions/other/invocations (a call to
//           another function) and answer the invocation with that call's response body
//   slow    per event: work for 500 ms, then answer with the event itself
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "shim/http_client.h"

namespace {

using ephemera::shim::Endpoint;
using ephemera::shim::HttpClient;
using ephemera::shim::HttpRequest;
using ephemera::shim::HttpResponse;

bool Next(HttpClient* client, HttpResponse* response, std::string* request_id) {
  HttpRequest next;
  next.target = "/2018-06-01/runtime/invocation/next";
  if (!client->Send(next, response).ok() || response->status != 200) return false;
  const std::string* id = response->Header("Lambda-Runtime-Aws-Request-Id");
  if (id == nullptr) return false;
  *request_id = *id;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Endpoint endpoint;
  const char* api = getenv("AWS_LAMBDA_RUNTIME_API");
  if (argc < 2 || api == nullptr || !Endpoint::ParseHostPort(api, &endpoint)) {
    std::fprintf(stderr, "usage: AWS_LAMBDA_RUNTIME_API=host:port %s hang|invoke|slow\n", argv[0]);
    return 2;
  }
  HttpClient client(endpoint);
  std::string behaviour = argv[1];
  while (true) {
    HttpResponse event;
    std::string id;
    if (!Next(&client, &event, &id)) return 1;
    std::fprintf(stderr, "probe: got %s\n", id.c_str());
    if (behaviour == "hang") {
      while (true) pause();
    }
    HttpRequest answer;
    answer.method = "POST";
    answer.target = "/2018-06-01/runtime/invocation/" + id + "/response";
    if (behaviour == "slow") {
      struct timespec work = {0, 500 * 1000 * 1000};
      while (nanosleep(&work, &work) != 0) {
      }
      answer.body = event.body;
    } else {
      HttpRequest invoke;
      invoke.method = "POST";
      invoke.target = "/2015-03-31/functions/other/invocations";
      invoke.body = event.body;
      HttpResponse invoked;
      if (!client.Send(invoke, &invoked).ok()) return 1;
      answer.body = invoked.body;
    }
    HttpResponse posted;
    if (!client.Send(answer, &posted).ok()) return 1;
  }
}
