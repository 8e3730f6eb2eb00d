// functions/echo/echo.cc: returns its event byte for byte.
//
// Native mode by default: the binary is the image's entrypoint, links ephemera_native and
// talks to the Runtime API itself (no shim, no process per event). With --stdio it copies
// stdin to stdout instead, so the same image can be run in exec mode under the shim
// (command override ["/echo", "--stdio"]) and the two modes compared on one image.
#include <string.h>
#include <unistd.h>

#include <cerrno>

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

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--stdio") == 0) return CopyStdinToStdout();
  return ephemera::native::Serve([](std::string_view event, const ephemera::native::Context& ctx) {
    return ephemera::native::Result::Success(
        std::string(event), ctx.content_type.empty() ? "application/json" : ctx.content_type);
  });
}
