// functions/echo/echo.cc: returns its event byte for byte.
//
// Native mode by default: the binary is the image's entrypoint, links ephemera_native and
// talks to the Runtime API itself (no shim, no process per event). With --stdio it copies
// stdin to stdout instead, so the same image can be run in exec mode under the shim
// (command override ["/echo", "--stdio"]) and the two modes compared on one image.
// --hog and --hog-stdio (native and exec) allocate and touch as many MiB as the event
// says (a decimal number), then answer: the tests use them to run a function past its
// memory limit and see Runtime.OutOfMemory.
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "shim/native.h"

namespace {

int CopyStdinToStdout() {
  char buf[65536];
  while (true) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(1, buf + off, static_cast<size_t>(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return 1;
      }
      off += w;
    }
  }
}

// Touches every page of `mib` MiB so they are really resident.
std::string Hog(std::string_view event) {
  long mib = std::strtol(std::string(event).c_str(), nullptr, 10);
  std::vector<std::vector<char>> blocks;
  for (long i = 0; i < mib; ++i) blocks.emplace_back(1 << 20, static_cast<char>(i));
  return "{\"allocated_mib\":" + std::to_string(blocks.size()) + "}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--stdio") == 0) return CopyStdinToStdout();
  if (argc > 1 && strcmp(argv[1], "--hog-stdio") == 0) {
    std::string in;
    char buf[256];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) in.append(buf, static_cast<size_t>(n));
    std::string out = Hog(in);
    return write(1, out.data(), out.size()) == static_cast<ssize_t>(out.size()) ? 0 : 1;
  }
  if (argc > 1 && strcmp(argv[1], "--hog") == 0) {
    return ephemera::native::Serve([](std::string_view event, const ephemera::native::Context&) {
      return ephemera::native::Result::Success(Hog(event), "application/json");
    });
  }
  return ephemera::native::Serve([](std::string_view event, const ephemera::native::Context& ctx) {
    return ephemera::native::Result::Success(
        std::string(event), ctx.content_type.empty() ? "application/json" : ctx.content_type);
  });
}
