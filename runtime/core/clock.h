// runtime/core/clock.h: time sources.
//
// MonotonicMs/Us measure durations (uv_hrtime, immune to wall-clock jumps);
// EpochMs is wall-clock time for protocol fields such as Lambda-Runtime-Deadline-Ms.
// Thread: any. Depends on: libuv.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

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

// "2026-11-23T05:46:57.874Z": ISO 8601 in UTC with milliseconds, as Lambda writes its
// timestamps (timeout messages, destination records).
inline std::string IsoTimestamp(int64_t epoch_ms) {
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(epoch_ms % 1000));
  return buf;
}

}  // namespace ephemera
