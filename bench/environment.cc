#include "bench/environment.h"

#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace ephemera::bench {
namespace {

// CGROUP2_SUPER_MAGIC from linux/magic.h.
constexpr long kCgroup2Magic = 0x63677270;

std::string Or(std::string v, const char* fallback = "unknown") {
  return v.empty() ? fallback : v;
}

std::string FieldOf(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    size_t colon = line.find_first_of(":=");
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    size_t b = v.find_first_not_of(" \t\"");
    size_t e = v.find_last_not_of(" \t\"");
    return b == std::string::npos ? "" : v.substr(b, e - b + 1);
  }
  return "";
}

std::string Quote(const std::string& s) {
  return "'" + s + "'";
}

}  // namespace

std::string CommandLine(const std::string& command) {
  FILE* f = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (f == nullptr) return "";
  char buf[512];
  std::string out;
  if (std::fgets(buf, sizeof buf, f) != nullptr) out = buf;
  while (std::fgets(buf, sizeof buf, f) != nullptr) {
  }
  ::pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

Fields CollectEnvironment(const std::string& docker_cli, const std::string& image,
                          const std::string& source_dir) {
  Fields f;
  f.emplace_back("cpu_model", Or(FieldOf("/proc/cpuinfo", "model name")));
  f.emplace_back("cores", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)));
  f.emplace_back("memory", Or(FieldOf("/proc/meminfo", "MemTotal")));
  utsname u{};
  f.emplace_back("kernel", ::uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "unknown");
  f.emplace_back("os", Or(FieldOf("/etc/os-release", "PRETTY_NAME")));
  struct statfs sf {};
  std::string cgroup = "unknown";
  if (::statfs("/sys/fs/cgroup", &sf) == 0) {
    cgroup = static_cast<long>(sf.f_type) == kCgroup2Magic ? "v2 (unified)" : "v1 (or hybrid)";
  }
  std::string docker_cg = CommandLine(docker_cli + " info --format '{{.CgroupVersion}}'");
  if (!docker_cg.empty()) cgroup += "; docker reports cgroup version " + docker_cg;
  f.emplace_back("cgroup", cgroup);
  f.emplace_back("docker_server",
                 Or(CommandLine(docker_cli + " version --format '{{.Server.Version}}'")));
  f.emplace_back("docker_api",
                 Or(CommandLine(docker_cli + " version --format '{{.Server.APIVersion}}'")));
  std::string runc = CommandLine("runc --version");
  if (runc.empty()) runc = CommandLine(docker_cli + " info --format 'commit {{.RuncCommit.ID}}'");
  f.emplace_back("runc", Or(runc));
  f.emplace_back("default_runtime",
                 Or(CommandLine(docker_cli + " info --format '{{.DefaultRuntime}}'")));
  f.emplace_back("storage_driver", Or(CommandLine(docker_cli + " info --format '{{.Driver}}'")));
  f.emplace_back("cgroup_driver",
                 Or(CommandLine(docker_cli + " info --format '{{.CgroupDriver}}'")));
  f.emplace_back("image", image);
  f.emplace_back("image_id",
                 Or(CommandLine(docker_cli + " image inspect --format '{{.Id}}' " + Quote(image))));
  f.emplace_back(
      "image_size_bytes",
      Or(CommandLine(docker_cli + " image inspect --format '{{.Size}}' " + Quote(image))));
  f.emplace_back("load_avg_start", LoadAverage());
  std::string commit;
  if (!source_dir.empty()) {
    commit = CommandLine("git -C " + Quote(source_dir) + " rev-parse --short HEAD");
    if (!commit.empty() &&
        !CommandLine("git -C " + Quote(source_dir) + " status --porcelain --untracked-files=no")
             .empty()) {
      commit += " (with uncommitted changes)";
    }
  }
  f.emplace_back("ephemera_commit", Or(commit));
  return f;
}

}  // namespace ephemera::bench
