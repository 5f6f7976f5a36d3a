// Any bytes from a server: parse_response returns or throws ResponseError,
// never crashes, never loops, never reads outside the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mailgate/imap/response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  try {
    auto r = mailgate::imap::parse_response(wire);
    (void)mailgate::imap::capabilities_of(r);
  } catch (const mailgate::imap::ResponseError&) {
  }
  (void)mailgate::imap::literal_size_at_end(wire);
  // The streamed SEARCH and the FETCH prefix scan read the same hostile bytes.
  std::uint64_t sum = 0;
  (void)mailgate::imap::scan_search(wire, [&](std::uint64_t n) { sum += n; });
  (void)mailgate::imap::fetch_uid_before_literal(wire);
  return 0;
}
