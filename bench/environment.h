// bench/environment.h: what machine and engine a run happened on, for the report.
//
// Collected before and after the measurements with blocking calls (files under /proc and
// /sys, and the docker and runc CLIs through popen), never while samples are taken.
// Thread: the main thread. Depends on: nothing of the daemon.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ephemera::bench {

using Fields = std::vector<std::pair<std::string, std::string>>;

// cpu_model, cores, memory, kernel, os, cgroup, docker_server, docker_api, runc,
// storage_driver, cgroup_driver, image, image_id, image_size_bytes, load_avg_start,
// ephemera_commit. Unknown values are "unknown" (and say why where it is cheap).
Fields CollectEnvironment(const std::string& docker_cli, const std::string& image,
                          const std::string& source_dir);

// The first line of a command's stdout (trailing newline removed), or "" on failure.
std::string CommandLine(const std::string& command);
// /proc/loadavg's first three fields.
std::string LoadAverage();

}  // namespace ephemera::bench
