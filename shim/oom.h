// shim/oom.h: has the container's memory cgroup OOM-killed something?
//
// When an exec child dies of SIGKILL, the kernel's OOM killer is the usual suspect; the
// memory cgroup counts its kills, so the shim reads the counter before the child starts
// and again after it died. Files read (the first that exists wins):
//   <dir>/memory.events       cgroup v2 (a line "oom_kill N")
//   <dir>/memory.oom_control  cgroup v1 (a line "oom_kill N", kernel 4.13 and later)
// where <dir> is $EPHEMERA_CGROUP_MEMORY_DIR if set, else /sys/fs/cgroup (v2, as a
// container sees its own cgroup) and then /sys/fs/cgroup/memory (v1).
// Errors: an unreadable or unparsable counter reads as -1 (then no OOM is ever reported).
// Thread: any; reads files only. Depends on: POSIX.
#pragma once

#include <string_view>

namespace ephemera::shim {

// The "oom_kill" count of the first file above, or -1 if none can be read.
long long ReadOomKillCount();

// The "oom_kill" value in the text of such a file, or -1 (exported for tests).
long long ParseOomKillCount(std::string_view text);

}  // namespace ephemera::shim
