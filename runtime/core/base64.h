// runtime/core/base64.h: standard base64 (RFC 4648, with padding), for
// X-Amz-Log-Result and X-Amz-Client-Context.
// Thread: any. Depends on: nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ephemera {

std::string Base64Encode(std::string_view data);
// Accepts padded or unpadded input; nullopt on any character outside the alphabet.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace ephemera
