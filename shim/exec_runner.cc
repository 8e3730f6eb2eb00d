// shim/exec_runner.cc: see exec_runner.h.
#include "shim/exec_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "shim/log_mark.h"
#include "shim/signals.h"

extern char** environ;

namespace ephemera::shim {
namespace {

constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";
constexpr size_t kIoChunk = 64 * 1024;

long long NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// 0 if `path` is an executable regular file, else an errno value.
int ExecutableError(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  if (!S_ISREG(st.st_mode)) return EACCES;
  if (access(path.c_str(), X_OK) != 0) return errno;
  return 0;
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Keeps the last `cap` bytes of everything appended to it.
void AppendTail(std::string* tail, const char* data, size_t n, size_t cap) {
  if (cap == 0) return;
  if (n >= cap) {
    tail->assign(data + n - cap, cap);
    return;
  }
  tail->append(data, n);
  if (tail->size() > 2 * cap) tail->erase(0, tail->size() - cap);
}

void SignalGroup(pid_t pid, int signo) {
  if (kill(-pid, signo) != 0) kill(pid, signo);
}

}  // namespace

void WriteAllBlocking(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 100);
        continue;
      }
      return;  // the log sink is gone; the function's output still matters more
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

Status CheckExecutable(const std::string& command) {
  if (command.empty()) return Status::Error("cannot run an empty command");
  int err = 0;
  if (command.find('/') != std::string::npos) {
    err = ExecutableError(command);
  } else {
    const char* path = getenv("PATH");
    std::string_view dirs = path != nullptr && *path != '\0' ? path : kDefaultPath;
    err = ENOENT;
    while (true) {
      size_t colon = dirs.find(':');
      std::string_view dir = dirs.substr(0, colon);
      std::string candidate = dir.empty() ? std::string(".") : std::string(dir);
      candidate.append("/").append(command);
      int e = ExecutableError(candidate);
      if (e == 0) {
        err = 0;
        break;
      }
      if (e == EACCES) err = EACCES;  // execvp reports EACCES if any candidate had it
      if (colon == std::string_view::npos) break;
      dirs.remove_prefix(colon + 1);
    }
  }
  if (err == 0) return Status::Ok();
  return Status::Error("cannot run " + command + ": " + strerror(err));
}

Status Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
             int in_fd, int out_fd, int err_fd, bool new_group, pid_t* pid, int* exec_errno) {
  *exec_errno = 0;
  *pid = -1;
  if (argv.empty() || argv[0].empty()) return Status::Error("cannot run an empty command");
  // Everything the child needs is built before fork(): after it, only async-signal-safe
  // calls are allowed (the tests fork from a multi-threaded process).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra_env) {
      if (x.size() >= name.size() && x.compare(0, name.size(), name) == 0 &&
          (x.size() == name.size() || x[name.size()] == '=')) {
        overridden = true;
        break;
      }
    }
    if (!overridden) env.push_back(*e);
  }
  for (const auto& x : extra_env) {
    if (x.find('=') != std::string::npos) env.push_back(const_cast<char*>(x.c_str()));
  }
  env.push_back(nullptr);

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Status::Error(std::string("pipe: ") + strerror(errno));
  pid_t child = fork();
  if (child < 0) {
    int e = errno;
    close(report[0]);
    close(report[1]);
    return Status::Error(std::string("fork: ") + strerror(e));
  }
  if (child == 0) {
    if (new_group) setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);  // ignored dispositions survive exec; the function wants default
    if (in_fd != 0) dup2(in_fd, 0);
    if (out_fd != 1) dup2(out_fd, 1);
    if (err_fd != 2) dup2(err_fd, 2);
    execvpe(args[0], args.data(), env.data());
    int e = errno;
    ssize_t ignored = write(report[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  if (new_group) setpgid(child, child);  // also from the parent, so kill(-pid) works at once
  close(report[1]);
  int e = 0;
  ssize_t n;
  do {
    n = read(report[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof e)) {
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    *exec_errno = e;
    return Status::Error("cannot run " + argv[0] + ": " + strerror(e));
  }
  *pid = child;
  return Status::Ok();
}

void RunProcess(const ExecOptions& options, std::string_view input, ExecResult* result) {
  *result = ExecResult();
  InstallSignalHandlers(false);
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    result->outcome = ExecResult::Outcome::kExecFailed;
    result->exec_errno = errno;
    result->spawn_error = std::string("pipe: ") + strerror(errno);
    for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]}) CloseFd(fd);
    return;
  }
  pid_t pid = -1;
  int exec_errno = 0;
  Status st =
      Spawn(options.argv, options.extra_env, in[0], out[1], err[1], true, &pid, &exec_errno);
  CloseFd(&in[0]);
  CloseFd(&out[1]);
  CloseFd(&err[1]);
  if (!st.ok()) {
    result->outcome = ExecResult::Outcome::kExecFailed;
    result->exec_errno = exec_errno;
    result->spawn_error = st.message();
    for (int* fd : {&in[1], &out[0], &err[0]}) CloseFd(fd);
    return;
  }
  for (int fd : {in[1], out[0], err[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (input.empty()) CloseFd(&in[1]);
  if (options.on_spawned) options.on_spawned(pid);

  size_t written = 0;
  bool exited = false;
  int wait_status = 0;
  long long kill_at = -1;
  long long drain_until = -1;
  char buf[kIoChunk];
  // Reads what the child wrote, until the pipe is empty (or closed).
  auto read_out = [&] {
    if (out[0] < 0) return;
    while (true) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n > 0 && result->promoted) {
        WriteAllBlocking(options.stdout_forward_fd, buf, static_cast<size_t>(n));
        continue;
      }
      if (n > 0) {
        size_t room = options.max_output_bytes - result->output.size();
        if (static_cast<size_t>(n) > room) {
          result->output_truncated = true;
          result->output.append(buf, room);
        } else {
          result->output.append(buf, static_cast<size_t>(n));
        }
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) CloseFd(&out[0]);
      break;
    }
  };
  auto read_err = [&] {
    if (err[0] < 0) return;
    while (true) {
      ssize_t n = read(err[0], buf, sizeof buf);
      if (n > 0) {
        if (options.stderr_forward_fd >= 0) {
          WriteAllBlocking(options.stderr_forward_fd, buf, static_cast<size_t>(n));
        }
        AppendTail(&result->stderr_tail, buf, static_cast<size_t>(n), options.stderr_tail_bytes);
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) CloseFd(&err[0]);
      break;
    }
  };
  // Auto mode: marks for a promoted client's results are written here, in order with its
  // output (log_mark.h).
  const int relay_fd = options.promote_fd >= 0 ? OpenLogMarkRelay() : -1;

  while (true) {
    if (!exited) {
      pid_t r = waitpid(pid, &wait_status, WNOHANG);
      if (r == pid) {
        exited = true;
        drain_until = NowMs() + options.drain_ms;
        CloseFd(&in[1]);  // nobody will read the rest of the event
      }
    }
    if (TerminationRequested() && !result->terminated) {
      result->terminated = true;
      if (!exited) {
        SignalGroup(pid, SIGTERM);
        kill_at = NowMs() + options.grace_ms;
      }
    }
    long long now = NowMs();
    if (!exited && kill_at >= 0 && now >= kill_at) {
      SignalGroup(pid, SIGKILL);
      kill_at = -1;
    }
    if (exited && ((out[0] < 0 && err[0] < 0) || now >= drain_until)) break;

    struct pollfd fds[7];
    int nfds = 0;
    int sig_index = -1, in_index = -1, out_index = -1, err_index = -1;
    int watch_index = -1, promote_index = -1, relay_index = -1;
    int watch_fd = options.upstream_watch.fd && !exited ? options.upstream_watch.fd() : -1;
    if (watch_fd >= 0) {
      watch_index = nfds;
      fds[nfds++] = {watch_fd, POLLIN, 0};
    }
    if (options.promote_fd >= 0 && !result->promoted) {
      promote_index = nfds;
      fds[nfds++] = {options.promote_fd, POLLIN, 0};
    }
    if (relay_fd >= 0) {
      relay_index = nfds;
      fds[nfds++] = {relay_fd, POLLIN, 0};
    }
    if (SignalPipeFd() >= 0) {
      sig_index = nfds;
      fds[nfds++] = {SignalPipeFd(), POLLIN, 0};
    }
    if (in[1] >= 0) {
      in_index = nfds;
      fds[nfds++] = {in[1], POLLOUT, 0};
    }
    if (out[0] >= 0) {
      out_index = nfds;
      fds[nfds++] = {out[0], POLLIN, 0};
    }
    if (err[0] >= 0) {
      err_index = nfds;
      fds[nfds++] = {err[0], POLLIN, 0};
    }
    int timeout = -1;
    if (exited) timeout = static_cast<int>(drain_until - now);
    if (kill_at >= 0) timeout = static_cast<int>(kill_at - now);
    if (timeout < -1) timeout = 0;
    // Belt and braces: wake up now and then even if a SIGCHLD was lost to a race.
    if (timeout < 0 || timeout > 200) timeout = 200;
    int ready = poll(fds, static_cast<nfds_t>(nfds), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (sig_index >= 0 && fds[sig_index].revents != 0) DrainSignalPipe();
    if (watch_index >= 0 && fds[watch_index].revents != 0 && !exited &&
        !options.upstream_watch.check()) {
      result->upstream_lost = true;
      SignalGroup(pid, SIGKILL);
    }
    if (promote_index >= 0 && fds[promote_index].revents != 0) {
      result->promoted = true;
      CloseFd(&in[1]);  // a Runtime API client does not read its event from stdin
      WriteAllBlocking(options.stdout_forward_fd, result->output.data(), result->output.size());
      result->output.clear();
      if (options.on_promoted) options.on_promoted();
    }
    if (in_index >= 0 && in[1] >= 0 && fds[in_index].revents != 0) {
      if (fds[in_index].revents & (POLLERR | POLLHUP)) {
        CloseFd(&in[1]);  // the child closed its stdin
      } else {
        size_t left = input.size() - written;
        ssize_t w = write(in[1], input.data() + written, left < kIoChunk ? left : kIoChunk);
        if (w > 0) {
          written += static_cast<size_t>(w);
          if (written == input.size()) CloseFd(&in[1]);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          CloseFd(&in[1]);
        }
      }
    }
    if (out_index >= 0 && fds[out_index].revents != 0) read_out();
    if (err_index >= 0 && fds[err_index].revents != 0) read_err();
    if (relay_index >= 0 && fds[relay_index].revents != 0) {
      // A mark waits (log_mark.h): copy all the child wrote before its result first.
      read_out();
      read_err();
      ServeLogMarkRelay();
    }
  }
  if (relay_fd >= 0) CloseLogMarkRelay();
  for (int* fd : {&in[1], &out[0], &err[0]}) CloseFd(fd);
  if (result->stderr_tail.size() > options.stderr_tail_bytes) {
    result->stderr_tail.erase(0, result->stderr_tail.size() - options.stderr_tail_bytes);
  }
  if (WIFSIGNALED(wait_status)) {
    result->outcome = ExecResult::Outcome::kSignaled;
    result->signal = WTERMSIG(wait_status);
  } else {
    result->outcome = ExecResult::Outcome::kExited;
    result->exit_code = WEXITSTATUS(wait_status);
  }
}

bool ReapChildren(pid_t watched, int* watched_status, int* reaped) {
  bool found = false;
  if (reaped != nullptr) *reaped = 0;
  while (true) {
    int status = 0;
    pid_t r = waitpid(-1, &status, WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (reaped != nullptr) ++*reaped;
    if (r == watched) {
      found = true;
      if (watched_status != nullptr) *watched_status = status;
    }
  }
  return found;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return "was killed by " + DescribeSignal(WTERMSIG(wait_status));
  return "stopped";
}

std::string DescribeSignal(int signo) {
  const char* name = sigabbrev_np(signo);
  return "signal " + std::to_string(signo) +
         (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
}

}  // namespace ephemera::shim
