// shim/exec_runner.h: starting and supervising the function's processes.
//
// Spawn() forks and execs a command with PATH lookup and the shim's environment plus
// extra variables; an exec failure in the child is reported back through a CLOEXEC pipe,
// so the caller knows synchronously whether the program started. RunProcess() is one
// exec-mode invocation: the event goes to the child's stdin while stdout is collected and
// stderr is forwarded and its tail kept, all through one poll() loop so large payloads in
// both directions cannot deadlock. It also forwards SIGTERM (from the self-pipe in
// signals.h) to the child's process group and kills the group after a grace period.
//
// Two optional extras serve the other modes: an upstream watch (the idle Runtime API
// connection; if its check fails the child's group is killed and the run ends with
// upstream_lost), and a promote fd (auto mode: once it is readable the child turned out to
// be a Runtime API client, so its stdin is closed and its stdout, so far collected as a
// would-be response, is written to the log and forwarded from then on). With a promote
// fd the run also serves the log-mark relay (log_mark.h): a mark the proxy asks for is
// written once the child's pipes have been copied, so it follows the child's output.
//
// Children get their own process group, default signal dispositions and only fds 0-2.
// The shim is usually PID 1, so orphans are reparented to it: ReapChildren() collects
// every exited child after each event.
// Thread: the main thread (it waits for SIGCHLD through the self-pipe).
// Depends on: POSIX, shim/signals.h, shim/http_client.h (ReadWatch), shim/log_mark.h.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "shim/http_client.h"
#include "shim/status.h"

namespace ephemera::shim {

// Checks that `command` could be exec'd: a name containing '/' must be an executable
// regular file; a bare name is searched in $PATH (or "/usr/local/bin:/usr/bin:/bin").
// The error reads "cannot run <command>: <reason>", e.g. "No such file or directory".
Status CheckExecutable(const std::string& command);

// Writes all of data to fd, retrying EINTR and waiting out EAGAIN; gives up on other
// errors (a log sink that is gone must not stop the shim).
void WriteAllBlocking(int fd, const char* data, size_t n);

// Forks and execs argv (execvp semantics) with the current environment, `extra_env`
// ("NAME=value" overrides a same-named variable; a bare "NAME" removes it), and in/out/err
// as fds 0, 1, 2.
// With `new_group`, the child leads its own process group. On exec failure the child is
// reaped, *exec_errno is set and the error reads "cannot run <argv0>: <reason>".
Status Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
             int in_fd, int out_fd, int err_fd, bool new_group, pid_t* pid, int* exec_errno);

struct ExecOptions {
  std::vector<std::string> argv;
  std::vector<std::string> extra_env;
  int stderr_forward_fd = 2;            // where the child's stderr is copied (-1: nowhere)
  size_t stderr_tail_bytes = 4096;      // how much of the child's stderr to keep
  size_t max_output_bytes = 64u << 20;  // stdout beyond this is dropped (output_truncated)
  int grace_ms = 2000;                  // SIGTERM → SIGKILL delay on shutdown
  int drain_ms = 100;  // how long to wait for EOF after the child exited (orphans may hold
                       // the pipes open)
  std::function<void(pid_t)> on_spawned;  // called with the child's pid (= its group)
  ReadWatch upstream_watch;               // see the file comment; unset: no watch
  int promote_fd = -1;                    // see the file comment; -1: never promoted
  std::function<void()> on_promoted;      // called once, when promote_fd turned readable
  int stdout_forward_fd = 1;              // where a promoted child's stdout goes
};

struct ExecResult {
  enum class Outcome { kExited, kSignaled, kExecFailed };
  Outcome outcome = Outcome::kExited;
  int exit_code = 0;   // kExited
  int signal = 0;      // kSignaled
  int exec_errno = 0;  // kExecFailed
  std::string output;  // the child's stdout
  bool output_truncated = false;
  std::string stderr_tail;     // the last stderr_tail_bytes of the child's stderr
  bool terminated = false;     // a SIGTERM arrived and was forwarded during the run
  std::string spawn_error;     // kExecFailed: "cannot run <argv0>: <reason>"
  bool upstream_lost = false;  // the upstream watch failed; the child was killed
  bool promoted = false;       // promote_fd fired; `output` holds nothing then
};

// Runs one exec-mode invocation to completion (see the file comment).
void RunProcess(const ExecOptions& options, std::string_view input, ExecResult* result);

// Reaps every child that has exited, without blocking. If `watched` is among them, its
// wait status is stored in *watched_status and true is returned. *reaped (if given)
// receives how many children were collected.
bool ReapChildren(pid_t watched = -1, int* watched_status = nullptr, int* reaped = nullptr);

// "exited with status 3" / "was killed by signal 9 (Killed)", for error messages.
std::string DescribeWaitStatus(int wait_status);
// "signal 9 (SIGKILL)".
std::string DescribeSignal(int signo);

}  // namespace ephemera::shim
