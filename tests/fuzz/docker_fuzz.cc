// Fuzz target: what the Docker engine sends back, as runtime/docker parses it
// without a socket: the multiplexed log/attach stream (DockerStreamDemuxer),
// the event stream (LineSplitter, ParseEngineEvent), error bodies (EngineError,
// EngineMessage), image references in events (NormalizeImageRef) and the JSON answers
// to image inspect, container inspect and container list (ParseImageInspect,
// ParseContainerInspect, ParseContainerList).
//
// Input: one control byte, then the engine's bytes. The control byte picks the
// piece size (1..64) the stream arrives in, the HTTP status and the target kind
// of the error mapping. Properties (the target aborts if one fails): the
// demuxer and the line splitter give the same output whether the bytes arrive
// at once or in pieces, the demuxer never emits more bytes than it was fed, an
// engine error is never an ok Status and always says something.
// Thread: libFuzzer's. Depends on: docker (no engine needed).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/core/log.h"
#include "runtime/docker/docker_client.h"
#include "runtime/json/json.h"

namespace {

namespace docker = ephemera::docker;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// Output of the demuxer with adjacent pieces of one stream merged.
struct Demuxed {
  std::vector<std::pair<docker::StreamType, std::string>> segments;
  bool mid_frame = false;
  size_t bytes = 0;
  bool operator==(const Demuxed&) const = default;
};

Demuxed Demux(std::string_view in, size_t piece) {
  Demuxed out;
  docker::DockerStreamDemuxer demuxer;
  auto sink = [&](docker::StreamType type, std::string_view bytes) {
    out.bytes += bytes.size();
    if (bytes.empty()) return;
    if (!out.segments.empty() && out.segments.back().first == type) {
      out.segments.back().second.append(bytes);
    } else {
      out.segments.emplace_back(type, std::string(bytes));
    }
  };
  for (size_t at = 0; at < in.size(); at += piece) demuxer.Feed(in.substr(at, piece), sink);
  out.mid_frame = demuxer.mid_frame();
  return out;
}

struct Lines {
  std::vector<std::string> lines;
  size_t pending = 0;
  bool operator==(const Lines&) const = default;
};

Lines Split(std::string_view in, size_t piece) {
  Lines out;
  docker::LineSplitter splitter;
  for (size_t at = 0; at < in.size(); at += piece) splitter.Feed(in.substr(at, piece), &out.lines);
  out.pending = splitter.pending();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ephemera::SetLogLevel(ephemera::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t piece = static_cast<size_t>(control & 63) + 1;

  // Logs and attach output.
  Demuxed whole = Demux(in, in.size() + 1), pieces = Demux(in, piece);
  Check(whole.bytes <= in.size(), "the demuxer emits no more than it is fed");
  if (!(whole == pieces)) {
    std::fprintf(stderr, "demuxing in pieces of %zu differs from at once\n", piece);
    std::abort();
  }

  // The event stream, one JSON object a line.
  Lines all = Split(in, in.size() + 1), split = Split(in, piece);
  Check(all == split, "line splitting does not depend on how the bytes arrive");
  for (const auto& line : all.lines) {
    Check(!line.empty() && line.find('\n') == std::string::npos, "lines are whole and non-empty");
    if (auto event = docker::ParseEngineEvent(line)) {
      Check(!event->type.empty() || !event->action.empty(), "an event has a type or an action");
      (void)docker::NormalizeImageRef(event->id);
      if (auto it = event->attributes.find("name"); it != event->attributes.end()) {
        (void)docker::NormalizeImageRef(it->second);
      }
    }
  }
  (void)docker::NormalizeImageRef(in);

  // Error bodies.
  static const long kStatuses[] = {400, 404, 409, 500};
  const long status = kStatuses[control >> 6];
  static const docker::Target kTargets[] = {docker::Target::kEngine, docker::Target::kImage,
                                            docker::Target::kContainer};
  for (docker::Target target : kTargets) {
    for (long s : {status, 404L}) {
      ephemera::Status st = docker::EngineError("create", target, "ephemera/echo:latest", s, in);
      Check(!st.ok(), "an engine error is never ok");
      Check(!st.message().empty(), "an engine error says something");
    }
  }
  // Empty only for a JSON body whose "message" is empty (the engine's own words).
  (void)docker::EngineMessage(in);

  // Inspect and list answers (JSON bodies). A failure leaves the output untouched.
  docker::ImageConfig image;
  image.id = "untouched";
  if (!docker::ParseImageInspect(in, &image).ok()) Check(image.id == "untouched", "image kept");
  docker::ContainerState state;
  state.status = "untouched";
  if (!docker::ParseContainerInspect(in, &state).ok()) {
    Check(state.status == "untouched", "state kept");
  }
  std::vector<docker::ContainerSummary> rows;
  if (docker::ParseContainerList(in, &rows).ok()) {
    for (const auto& row : rows) Check(!row.id.empty(), "listed containers have an id");
  }
  return 0;
}
