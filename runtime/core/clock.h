// runtime/core/clock.h: time sources.
//
// MonotonicMs/Us measure durations (uv_hrtime, immune to wall-clock jumps);
// EpochMs is wall-clock time for protocol fields such as Lambda-Runtime-Deadline-Ms.
// Thread: any. Depends on: libuv.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

namespace ephemera {

inline double MonotonicMs() {
  return static_cast<double>(uv_hrtime()) / 1e6;
}
inline uint64_t MonotonicUs() {
  return uv_hrtime() / 1000;
}
inline int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ephemera
