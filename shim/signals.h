// shim/signals.h: the shim's signal handling, as a self-pipe.
//
// The shim is often PID 1 in its container. PID 1 ignores signals it has no handler for,
// so SIGTERM must be caught explicitly to be forwarded to the function process. Handlers
// only set a flag and write the signal number as one byte into a non-blocking CLOEXEC
// pipe; loops that wait (the exec runner's poll, the HTTP client's reads) include that
// pipe or check the flag after EINTR. Handlers are installed without SA_RESTART, so a
// blocking read returns EINTR when a signal arrives.
// Every other thread the shim starts runs with all signals blocked
// (StartThreadWithoutSignals), so signals always reach the main thread's waits.
// Thread: install from the main thread before starting others. Depends on: POSIX.
#pragma once

#include <functional>
#include <thread>

namespace ephemera::shim {

// Starts `body` on a new thread whose signal mask blocks every signal.
std::thread StartThreadWithoutSignals(std::function<void()> body);

// Installs the SIGCHLD handler and ignores SIGPIPE (writes to closed sockets and pipes
// then fail with EPIPE instead of killing the shim). With `termination`, SIGTERM and
// SIGINT are caught too. Idempotent; later calls may add termination handling.
void InstallSignalHandlers(bool termination);

// The read end of the self-pipe (non-blocking), or -1 before InstallSignalHandlers.
int SignalPipeFd() noexcept;

// Empties the self-pipe. Returns true if it held a SIGTERM/SIGINT byte.
bool DrainSignalPipe() noexcept;

// True once SIGTERM or SIGINT has been received.
bool TerminationRequested() noexcept;

}  // namespace ephemera::shim
