// Fuzz target for the whole untrusted-bytes path: raw message → MIME parse →
// decoders → HTML sanitizer → draft → preview JSON, and the header reader's
// other users (the seen-set's Message-ID, thread ids, "is this a mail").
// Any crash, leak, sanitizer report, hang or broken promise is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailgate/mail/header_block.hpp"
#include "mailgate/mail/preview.hpp"
#include "mailgate/mail/ticket_draft.hpp"

namespace {

// The header reader's promises: its bounds hold, the body starts inside the
// input, a seen key holds no bracket or white space, a thread id list is bounded.
void check_header_reader(std::string_view raw) {
  namespace mail = mailgate::mail;
  const mail::HeaderBlock block = mail::read_header_block(raw, {4096, 64, 1024});
  if (block.fields.size() > 64 || block.body_offset > raw.size()) __builtin_trap();
  for (const auto& f : block.fields)
    if (f.value.size() > 1024) __builtin_trap();
  if (mail::message_id(raw).find_first_of("<> \t\r\n") != std::string::npos) __builtin_trap();
  if (mail::angle_ids(block.first("References"), 10, 998).size() > 10) __builtin_trap();
  if (mail::to_string(mail::classify_mail(raw)).empty() != (mail::classify_mail(raw) == mail::MailVerdict::Mail))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  mailgate::mail::DraftOptions options;
  // Small limits so every limit path is reached by small inputs, and the
  // fuzzer is not slowed by thousand-part inputs under ASan.
  options.max_media_bytes = 4096;
  options.limits.max_parts = 64;
  options.limits.max_depth = 16;
  options.limits.max_header_fields = 64;
  check_header_reader(raw);
  auto result = mailgate::mail::build_draft(raw, options);
  if (result.draft) {
    std::string json = mailgate::mail::dump_json(mailgate::mail::preview_json(*result.draft));
    if (json.empty()) __builtin_trap();
  }
  return 0;
}
