// runtime/core/ids.h: request ids (UUID v4 text) for invocations.
// Thread: any (the generator is thread_local). Depends on: nothing.
#pragma once

#include <string>

namespace ephemera {

// Returns a random RFC 4122 version-4 UUID, e.g. "8476a536-e9f4-41e8-9739-2dfe598c3fcd".
std::string NewRequestId();

}  // namespace ephemera
