// shim/supervisor.h: the shim's last word over its children: deadlines and hard exits.
//
// Whatever the mode, the shim answers for one process group at a time (the exec child's,
// the http service's, the passthrough program's), recorded with SuperviseGroup(). Two
// events end the shim without further ceremony, killing that group with SIGKILL first:
//   - an invocation still open kDeadlineGraceMs after its Lambda-Runtime-Deadline-Ms
//     (WatchDeadline/ForgetDeadline; a thread of its own waits for the earliest one):
//     exit code kExitDeadline;
//   - the Runtime API is gone (ExitRuntimeApiGone, called by whoever noticed): exit code
//     kExitRuntimeApiGone. The daemon then sees the container exit.
// Outside a container (tests, a bare host) killing the group is what stops the children;
// inside one, the shim is PID 1 and its exit takes the whole PID namespace down anyway.
// Each exit logs one "ephemera-shim: <mode> mode: ..." line first. Exits are serialised:
// the first to begin (these, or ExitShim at the end of main) is the one that happens.
// Ownership: process-wide state, never destroyed (the deadline thread runs until _exit).
// Errors: none reported; the exits do not return.
// Thread: every function is thread-safe; the exits may be called from any thread.
// Depends on: shim/modes.h (ShimLog), POSIX.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace ephemera::shim {

inline constexpr int kExitRuntimeApiGone = 3;
inline constexpr int kExitDeadline = 4;
inline constexpr long long kDeadlineGraceMs = 1000;

// The mode named in the exit messages ("exec", "passthrough", ...).
void SetSupervisorMode(std::string_view mode);

// The process group to SIGKILL on a hard exit; -1 for none.
void SuperviseGroup(pid_t group);

// Starts (or moves) the deadline of invocation `request_id`: epoch milliseconds, as in
// Lambda-Runtime-Deadline-Ms. A deadline <= 0 is ignored (no deadline known).
void WatchDeadline(std::string_view request_id, long long deadline_epoch_ms);
// The invocation is answered: its deadline no longer applies.
void ForgetDeadline(std::string_view request_id);

// Logs "<mode> mode: the Runtime API at <where> is gone (<why>); ...", kills the supervised
// group and exits with kExitRuntimeApiGone.
[[noreturn]] void ExitRuntimeApiGone(std::string_view where, std::string_view why);

// Kills the supervised group and exits with `code` after logging "<mode> mode: <message>".
[[noreturn]] void ExitKillingChildren(int code, std::string_view message);

// The normal end of the shim: exit(code), unless a hard exit above has begun on another
// thread, which then wins (its kill makes the main thread see the command die, and the
// shim must exit with the hard exit's code, not the command's status).
[[noreturn]] void ExitShim(int code);

}  // namespace ephemera::shim
