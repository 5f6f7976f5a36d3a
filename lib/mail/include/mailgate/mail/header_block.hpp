// The one reader of a mail's header block (RFC 5322 §2.2, §3.6; obs-fold of
// §4.2), for every room: the MIME parser reads each entity's header with it,
// threading its In-Reply-To/References, the spool its Message-ID and, for
// mail without an envelope, its recipients; and every ingest path asks it
// "is this a mail?" (`classify_mail`), so `deliver`, SMTP and the pipeline
// answer alike. A small target of its own (mailgate::header_block, links only
// mailgate::text): the spool and SMTP use it without the MIME stack.
//
// Hostile input: the block is bounded in fields, bytes and field length (past
// a bound the rest is dropped and reported, never an error); CRLF and bare LF
// line ends, folded lines (a line starting with SP or HT continues the field
// before it), 8-bit bytes and NUL in values are kept as they are. A line that
// is neither a field nor a fold (no colon, or a name with a space or a control
// byte) ends the header without its blank line — broken mailers do that — and
// belongs to the body. An mbox "From " separator line before the header is
// skipped. Pure functions: any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate::mail {

// The bounds of one header block (the MIME parser's MimeLimits default to these).
inline constexpr std::size_t kMaxHeaderBlockBytes = 256 * 1024;  // names and values kept
inline constexpr std::size_t kMaxHeaderFields = 1000;            // fields kept
inline constexpr std::size_t kMaxHeaderFieldBytes = 64 * 1024;   // one field, folded lines included
// The head every ingest path keeps and reads: "is this a mail", Message-ID and
// the thread ids are decided on the first 64 KiB of a message, whoever asks.
inline constexpr std::size_t kMailHeadBytes = 64 * 1024;

struct HeaderLimits {
  std::size_t max_block_bytes = kMaxHeaderBlockBytes;
  std::size_t max_fields = kMaxHeaderFields;
  std::size_t max_field_bytes = kMaxHeaderFieldBytes;
};

struct HeaderField {
  std::string name;   // as written, without surrounding white space
  std::string value;  // raw bytes after the colon (one leading SP/HT dropped); a fold kept as CRLF + the next line
};

struct HeaderBlock {
  std::vector<HeaderField> fields;  // in header order, at most max_fields
  std::size_t body_offset = 0;      // where the body starts in the input (its size when there is no body)
  bool over_limit = false;          // fields past max_fields or max_block_bytes were dropped
  bool long_field = false;          // a field was cut at max_field_bytes

  // First field of that name (ASCII case-insensitive), or nullptr.
  const HeaderField* find(std::string_view name) const;
  // Its raw value; "" when absent.
  std::string_view first(std::string_view name) const;
  // The raw values of every field of that name, in order; at most max_values.
  std::vector<std::string_view> all(std::string_view name, std::size_t max_values) const;
};

// Reads the header block at the start of `raw` (a message or a MIME entity).
HeaderBlock read_header_block(std::string_view raw, const HeaderLimits& limits = {});

// A raw value unfolded (RFC 5322 §2.2.3): every CR and LF removed, so a fold
// leaves the white space that started its continuation line.
std::string unfold(std::string_view value);

// The values of fields `name` (case-insensitive, the colon right after the
// name) in a head, read the way the spool's seen-set, threading and IMAP's
// envelope have always read it: every line up to the first empty one, a line
// that is no field skipped rather than ending the header (a badly folded
// Subject above a Message-ID must not change the mail's seen key, or lose its
// In-Reply-To). Continuation lines appended as they are (CR kept); at most
// `max_values`, within the first kMailHeadBytes.
std::vector<std::string> scan_head(std::string_view head, std::string_view name, std::size_t max_values);

// The seen-set's Message-ID (scan_head's first Message-ID field), with
// every '<', '>', SP, HT, CR and LF removed; "" when there is none. (The
// spool keys its seen-set on this: it must not change for a mail it saw.)
std::string message_id(std::string_view head);

// The ids between angle brackets in a field value (In-Reply-To, References),
// white space inside an id removed, in order; empty ids and ids longer than
// max_id_bytes skipped; at most max_ids.
std::vector<std::string> angle_ids(std::string_view value, std::size_t max_ids, std::size_t max_id_bytes);

// "Is this a mail?": one rule for every ingest path (deliver, SMTP/LMTP end of
// data, the pipeline's draft; IMAP spools everything and the pipeline's
// failure keeps it in failed/ with the reason). A mail is input that is not
// only white space and whose header block, read from its first kMailHeadBytes,
// has at least one of the fields every mail system writes (From, Sender, To,
// Subject, Date, Message-ID, Received, Return-Path, MIME-Version, Reply-To).
enum class MailVerdict { Mail, Empty, NoHeaderFields };
MailVerdict classify_mail(std::string_view head);
// Why it is not a mail, for people (deliver's stderr, SMTP's 554, failed/'s
// reason): "not an email message: …"; "" for MailVerdict::Mail.
std::string_view to_string(MailVerdict verdict);

}  // namespace mailgate::mail
