// functions/rev/rev.cc: writes stdin to stdout with the bytes in reverse order.
//
// An exec-mode function for an image with no shell and nothing else in it (FROM scratch,
// one static binary): it shows the shim needs nothing from the image.
#include <unistd.h>

#include <cerrno>
#include <string>

int main() {
  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  std::string reversed(data.rbegin(), data.rend());
  for (size_t off = 0; off < reversed.size();) {
    ssize_t w = write(1, reversed.data() + off, reversed.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    off += static_cast<size_t>(w);
  }
  return 0;
}
