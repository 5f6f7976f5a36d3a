// Mail → ticket draft: what one message becomes in the Messenger API
// (design.md "Mail → ticket rules"), computed offline from the raw bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/mail/address.hpp"
#include "mailgate/mail/mime_parser.hpp"

namespace mailgate::mail {

// Largest decoded media the API can take: 10 MB request limit, base64 grows
// by 4/3, plus room for the JSON around it (messenger-api.md).
inline constexpr std::size_t kMaxMediaBytes = 7 * 1024 * 1024;

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

struct TicketDraft {
  Mailbox user;                       // who the ticket is from
  std::string title;                  // decoded, folded Subject
  std::string message;                // sanitized HTML with att:media-N placeholders
  std::vector<MediaItem> media;       // every item is also a ticket attachment
  std::vector<SkippedPart> skipped;   // parts not imported, and why
  std::optional<std::string> ignored; // why this mail must not become a ticket
  std::string message_id;             // Message-ID without <>, "" when absent
  std::string in_reply_to;            // first In-Reply-To id, for threading later
};

enum class SenderPreference { From, ReplyTo };

struct DraftOptions {
  SenderPreference sender = SenderPreference::From;
  std::size_t max_media_bytes = kMaxMediaBytes;
  std::string loop_id = "mailgate";  // our X-Loop value: mail carrying it is ours
  MimeLimits limits;
};

struct DraftResult {
  std::optional<TicketDraft> draft;
  std::string error;  // set when the input is not an email message at all
};

DraftResult build_draft(std::string_view raw_message, const DraftOptions& options = {});

}  // namespace mailgate::mail
