// tests/integration/euid_probe.cc: prints its real and effective user ids, for the setuid
// test in isolation_test.cc (installed setuid root in a test image). Static, no libc
// beyond what a FROM-nothing image can run.
#include <unistd.h>

#include <cstdio>

int main() {
  std::printf("uid=%d euid=%d\n", static_cast<int>(getuid()), static_cast<int>(geteuid()));
  return 0;
}
