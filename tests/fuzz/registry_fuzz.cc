// Fuzz target: the registry's readers (registry/registry.h): the manifest and
// state-file parsers (Registry::Open on a temporary file, ParseFunctionSpec),
// the CreateFunction mapping (SpecFromCreateFunction) and the small grammars
// (ParseFunctionRef, ValidateImageReference, ParseForward, ValidateName).
//
// Input: any bytes, used as JSON text and as a string. Properties checked (the
// target aborts if one fails):
//   - every spec ParseFunctionSpec accepts survives SpecToJson and back unchanged
//     (the state file depends on it);
//   - a function SpecFromCreateFunction accepts and Registry::Create stores is
//     found, unchanged, by a Registry opened afresh on the same state file (a
//     created function survives a restart);
//   - a name ParseFunctionRef extracts passes ValidateName; a forward target has
//     a port in 1..65535.
// Thread: libFuzzer's. Depends on: registry, json. Writes files under a private
// temporary directory only.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "registry/registry.h"
#include "runtime/core/log.h"
#include "runtime/json/json.h"

namespace {

using ephemera::registry::FunctionSpec;
using ephemera::registry::Registry;
namespace reg = ephemera::registry;

std::string g_dir;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

void WriteFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// SpecToJson then ParseFunctionSpec gives the spec back.
void CheckRoundTrip(const FunctionSpec& spec) {
  ephemera::json::Json j = reg::SpecToJson(spec);
  Check(j != nullptr, "SpecToJson returns an object");
  FunctionSpec back;
  back.from_manifest = spec.from_manifest;
  ephemera::Status st = reg::ParseFunctionSpec(spec.name, j.get(), "round-trip", &back);
  if (!st.ok()) {
    std::fprintf(stderr, "SpecToJson output refused: %s\n%s\n", st.message().c_str(),
                 ephemera::json::Print(j.get()).c_str());
    std::abort();
  }
  if (!(back == spec)) {
    std::fprintf(stderr, "round trip changed the spec:\n%s\n%s\n",
                 ephemera::json::Print(j.get()).c_str(),
                 ephemera::json::Print(reg::SpecToJson(back).get()).c_str());
    std::abort();
  }
  // The API's views of it must not fail either.
  (void)ephemera::json::Print(reg::FunctionConfiguration(spec).get());
  (void)ephemera::json::Print(reg::GetFunctionResult(spec).get());
}

void OpenAndWalk(const std::string& manifest, const std::string& state) {
  std::unique_ptr<Registry> r;
  if (!Registry::Open(manifest, state, &r).ok()) return;
  for (const auto& spec : r->List()) {
    Check(r->Find(spec->name) == spec, "Find returns what List lists");
    CheckRoundTrip(*spec);
  }
}

// A created function is found unchanged after reopening the state file.
void CreateAndReopen(const FunctionSpec& spec) {
  const std::string state = g_dir + "/created.json";
  std::filesystem::remove(state);
  std::unique_ptr<Registry> first;
  Check(Registry::Open("", state, &first).ok(), "an absent state file opens empty");
  if (!first->Create(spec).ok()) return;  // refused by validation: fine
  auto stored = first->Find(spec.name);
  Check(stored != nullptr, "a created function is found");
  std::unique_ptr<Registry> second;
  ephemera::Status st = Registry::Open("", state, &second);
  if (!st.ok()) {
    std::fprintf(stderr, "state file written by Create does not open: %s\n", st.message().c_str());
    std::abort();
  }
  auto reread = second->Find(spec.name);
  Check(reread != nullptr, "a created function survives reopening");
  if (!(*reread == *stored)) {
    std::fprintf(stderr, "reopening changed the function:\n%s\n%s\n",
                 ephemera::json::Print(reg::SpecToJson(*stored).get()).c_str(),
                 ephemera::json::Print(reg::SpecToJson(*reread).get()).c_str());
    std::abort();
  }
  std::filesystem::remove(state);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ephemera::SetLogLevel(ephemera::LogLevel::kError);
  std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  std::string tmpl = base + "/ephemera-fuzz-registry-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  g_dir = tmpl;
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g_dir.empty()) LLVMFuzzerInitialize(nullptr, nullptr);
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // The grammars, on the raw bytes.
  std::string name, qualifier;
  if (reg::ParseFunctionRef(text, &name, &qualifier).ok()) {
    // AWS's Invoke pattern allows '.' in the name, which ValidateName (the
    // CreateFunction pattern) does not: such a name is simply never found.
    Check(!name.empty() && name.size() <= 64, "ParseFunctionRef yields 1..64 characters");
    Check(name.find(':') == std::string::npos, "the name holds no ':'");
  }
  (void)reg::ValidateName(text);
  (void)reg::ValidateImageReference(text);
  reg::ForwardTarget forward;
  if (reg::ParseForward(text, &forward).ok()) {
    Check(forward.port >= 1 && forward.port <= 65535, "forward ports are 1..65535");
    Check(!forward.host.empty(), "forward hosts are not empty");
  }

  // The files: the same bytes as a manifest and as a state file.
  const std::string file = g_dir + "/input.json";
  WriteFile(file, text);
  OpenAndWalk(file, "");
  OpenAndWalk("", file);

  // The JSON-level entry points, on what cJSON can represent faithfully.
  if (reg::ContainsEscapedNul(text)) return 0;
  ephemera::json::Json root = ephemera::json::Parse(text);
  if (root == nullptr || !cJSON_IsObject(root.get())) return 0;
  FunctionSpec spec;
  if (reg::ParseFunctionSpec("fuzz", root.get(), "input.json", &spec).ok()) CheckRoundTrip(spec);
  FunctionSpec created;
  if (reg::SpecFromCreateFunction(root.get(), &created).ok()) {
    Check(!created.from_manifest, "CreateFunction specs are not from the manifest");
    if (reg::ValidateName(created.name).ok()) CreateAndReopen(created);
  }
  return 0;
}
