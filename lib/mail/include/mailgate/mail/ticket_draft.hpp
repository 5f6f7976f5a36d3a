// Mail → ticket draft: what one message becomes in the Messenger API
// (design.md "Mail → ticket rules"), computed offline from the raw bytes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/config/choices.hpp"
#include "mailgate/mail/address.hpp"
#include "mailgate/mail/mime_parser.hpp"

namespace mailgate::mail {

// Largest decoded media the API can take: 10 MB request limit, base64 grows
// by 4/3, plus room for the JSON around it (messenger-api.md).
inline constexpr std::size_t kMaxMediaBytes = 7 * 1024 * 1024;

// Uploads one mail may ask for (mail.max_media): a mail of 20 000 tiny
// data: images must not spend the API key's rate limit for everyone.
inline constexpr std::size_t kDefaultMaxMedia = 100;
// Drafting time one mail may take (mail.max_processing_time); over it the
// mail goes to failed/ instead of holding up the others.
inline constexpr std::chrono::milliseconds kDefaultMaxProcessingTime{30'000};
// Message-IDs kept from one References field: the first (the thread's
// root) and the newest ones, as news software trims it (RFC 5537).
inline constexpr std::size_t kMaxReferences = 100;
// Parts skipped for the same budget reason that the ticket names one by
// one; the rest are counted in one line.
inline constexpr std::size_t kMaxNamedSkips = 50;

struct MediaItem {
  std::string ref;           // "media-N": stands where the API's UUID will be
  std::string name;          // file name to upload under
  std::string content_type;  // lower-case type/subtype
  std::string bytes;         // decoded content, exactly what is uploaded
  std::string sha256;        // hex digest of `bytes`
  bool inline_image = false; // shown inside the message as <img src="att:…"/>
  std::string content_id;    // without angle brackets; "" when none
};

struct SkippedPart {
  std::string name;
  std::string reason;
};

// A fact about a mail that policy acts on (design.md "Senders and policy"):
// the draft reports it, lib/routing decides what it means with the config.
struct MailSignal {
  std::string kind;    // "loop", "bounce", "auto_reply", "bulk", "unauthenticated", "no_sender"
  std::string reason;  // for people: "bulk mail (Precedence: list)"
};

// A top-level header field, RFC 2047-decoded and whitespace-folded (what
// routes' match.header and match.subject see).
struct DecodedHeader {
  std::string name;  // as written
  std::string value;
};

struct TicketDraft {
  Mailbox user;                       // who the ticket is from
  std::string title;                  // decoded, folded Subject
  std::string message;                // sanitized HTML with att:media-N placeholders
  std::vector<MediaItem> media;       // every item is also a ticket attachment
  std::vector<SkippedPart> skipped;   // parts not imported, and why
  // The first signal's reason. Kept for preview_json without a decision
  // (fuzz target, dry-run); lib/routing's Decision is what counts.
  std::optional<std::string> ignored;
  std::string message_id;             // Message-ID without <>, "" when absent
  std::string in_reply_to;            // first In-Reply-To id, for threading later
  std::vector<std::string> references; // References ids without <>, header order, at most kMaxReferences
  // The message as a reply to an existing ticket carries it: without the
  // quoted history when DraftOptions::strip_quoted (else == message), plus
  // the same "not imported" note. Media are the same as the ticket's, even
  // an inline image whose <img> was in the stripped part.
  std::string reply_message;
  // ---- facts for routing and policy (lib/routing) ----
  std::vector<MailSignal> signals;     // in design.md's policy order
  std::string list_id;                 // List-Id without <>, lower-case; "" when none
  bool trusted_list = false;           // list_id is in DraftOptions::trusted_lists
  std::string user_field;              // the field `user` came from: "From", "X-Original-From", …
  std::string dmarc;                   // dmarc= of the trusted Authentication-Results; "" when none is trusted
  std::vector<DecodedHeader> headers;  // the top-level fields, in order
};

// mail.sender, the configuration's choice itself (choices.hpp), not a copy.
using SenderPreference = config::SenderField;

struct DraftOptions {
  SenderPreference sender = SenderPreference::From;
  std::size_t max_media_bytes = kMaxMediaBytes;
  std::size_t max_media = kDefaultMaxMedia;  // uploads per mail
  std::chrono::milliseconds max_processing_time = kDefaultMaxProcessingTime;
  // Set (by Processor::stop) to give up a draft in progress; the mail stays
  // queued. Shared by every copy of these options; null: never cancelled.
  std::shared_ptr<std::atomic<bool>> cancel;
  std::string loop_id = "mailgate";  // our X-Loop value: mail carrying it is ours
  bool strip_quoted = true;          // threading.strip_quoted: reply_message without the quoted history
  // senders.trusted_lists (List-Id values, lower-case, no <>): only their
  // posts may name the author in X-Original-From and kin; anyone else could
  // write as anyone with those headers.
  std::vector<std::string> trusted_lists;
  // senders.authserv_id: the topmost Authentication-Results with this id is
  // our MX's verdict; "" = no Authentication-Results is trusted.
  std::string authserv_id;
  MimeLimits limits;
};

enum class DraftFailure {
  None,
  NotMail,     // the input is not an email message at all: failed/
  OverBudget,  // over mail.max_processing_time or the HTML parser's memory: failed/
  Cancelled,   // shutting down: leave the mail queued
};

struct DraftResult {
  std::optional<TicketDraft> draft;
  DraftFailure failure = DraftFailure::None;
  std::string error;  // why there is no draft
};

DraftResult build_draft(std::string_view raw_message, const DraftOptions& options = {});

}  // namespace mailgate::mail
