// Base64 (RFC 4648, standard alphabet) as JSON bodies carry binary data: the HTTP server's input images, and the
// images of its OpenAI-style answers.
#pragma once

#include <string>
#include <string_view>

namespace k5 {

// Decodes `text`; a `data:<type>;base64,` prefix (a data URL) and ASCII whitespace are skipped, padding is optional
// but must be right when present. Anything else is an error naming `what`.
std::string decode_base64(std::string_view text, const std::string& what);

// `bytes` in base64 with '=' padding, no line breaks.
std::string encode_base64(std::string_view bytes);

}  // namespace k5
