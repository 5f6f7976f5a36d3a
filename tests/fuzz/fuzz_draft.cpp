// Fuzz target for the whole untrusted-bytes path: raw message → MIME parse →
// decoders → HTML sanitizer → draft → preview JSON. Any crash, leak,
// sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailgate/mail/preview.hpp"
#include "mailgate/mail/ticket_draft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  mailgate::mail::DraftOptions options;
  // Small limits so every limit path is reached by small inputs, and the
  // fuzzer is not slowed by thousand-part inputs under ASan.
  options.max_media_bytes = 4096;
  options.limits.max_parts = 64;
  options.limits.max_depth = 16;
  options.limits.max_header_fields = 64;
  auto result = mailgate::mail::build_draft(raw, options);
  if (result.draft) {
    std::string json = mailgate::mail::dump_json(mailgate::mail::preview_json(*result.draft));
    if (json.empty()) __builtin_trap();
  }
  return 0;
}
