// runtime/core/log.h: one-line log records to stderr.
//
// Format: "2026-11-23T05:40:01.123Z info  docker: message". The level threshold
// comes from EPHEMERA_LOG (debug|info|warn|error, default info). Lines are short
// and written with one write(2), so they do not interleave.
// Thread: any. Depends on: nothing.
#pragma once

#include <cstdarg>

namespace ephemera {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogF(LogLevel level, const char* component, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace ephemera

#define EPH_LOG(level, component, ...)                                                  \
  do {                                                                                  \
    if (::ephemera::LogEnabled(level)) ::ephemera::LogF(level, component, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(component, ...) EPH_LOG(::ephemera::LogLevel::kDebug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) EPH_LOG(::ephemera::LogLevel::kInfo, component, __VA_ARGS__)
#define LOG_WARN(component, ...) EPH_LOG(::ephemera::LogLevel::kWarn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) EPH_LOG(::ephemera::LogLevel::kError, component, __VA_ARGS__)
