// shim/log_mark.h: the end-of-output mark a runtime writes for the daemon's log tail.
//
// With X-Amz-Log-Type: Tail the daemon answers with the output the invocation wrote. That
// output reaches the daemon on the engine's attach stream, which trails the Runtime API by
// milliseconds on a quiet machine and by over a second on a busy one. So the daemon asks
// for a mark: its /next answer carries "Ephemera-Log-Mark: 1", and the runtime then writes
//   "\x1e" "ephemera-log-mark " <request id> "\x1e"
// to stdout and to stderr just before it posts that invocation's result. All the function
// wrote to a stream before is ahead of the mark in that stream's pipe, so once the daemon
// has read the mark on both streams it has the whole output; it strips the marks from the
// tail (runtime/sandbox/log_marks.h). A runtime offers marks by sending
// "Ephemera-Log-Marks: 1" on GET /next (RuntimeApiClient does, so the shim's modes and
// native functions do); the daemon counts on them from every environment it injected the
// shim into (passthrough runtimes post through the shim's proxy, which marks for them).
// Only asked-for invocations are marked: a mark costs the engine a copy of both streams.
// See docs/protocols.md, "Log marks".
// Thread: the functions are thread-safe (the proxy's threads and the main thread).
// Depends on: nothing.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ephemera::shim {

inline constexpr std::string_view kLogMarkPrefix =
    "\x1e"
    "ephemera-log-mark ";
inline constexpr char kLogMarkEnd = '\x1e';
// Longer ids are not marked (the daemon's ids are 36 characters).
inline constexpr size_t kMaxLogMarkId = 128;
// On a /next answer: mark this invocation's output.
inline constexpr std::string_view kLogMarkAskHeader = "Ephemera-Log-Mark";
// On GET /next: this runtime writes marks when asked.
inline constexpr std::string_view kLogMarksOfferHeader = "Ephemera-Log-Marks";

// The mark for `request_id`.
std::string LogMark(std::string_view request_id);

// Remembers that the invocation `request_id` asked for a mark (its /next answer had
// kLogMarkAskHeader).
void ExpectLogMark(std::string_view request_id);

// If `request_id` asked for a mark: writes it to fd 1 and fd 2, forgets the id and returns
// true. Call it just before posting the invocation's result.
bool WriteLogMarkFor(std::string_view request_id);

// The same, for a result that passes through the proxy. While a relay is open (auto mode:
// the main thread copies a promoted client's stdout and stderr from pipes), the client's
// last lines may still sit in those pipes, so the mark is handed to the relay's thread,
// which copies all that is there first; this waits until it has (at most 1 s, then it
// writes the mark itself). Without a relay, it is WriteLogMarkFor.
void WriteLogMarkInOrder(std::string_view request_id);

// The relay's side (exec_runner.cc, main thread). Open returns a descriptor that turns
// readable when a mark waits; Serve writes the waiting marks (call it once everything the
// child wrote so far has been copied); Close writes any still waiting and ends the relay.
int OpenLogMarkRelay();
void ServeLogMarkRelay();
void CloseLogMarkRelay();

}  // namespace ephemera::shim
