// The stable JSON of `mailgate preview` (design.md): what would be sent.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "mailgate/mail/ticket_draft.hpp"

namespace mailgate::mail {

// `ticket_defaults` (config tickets.defaults) are merged into "ticket"
// without overriding title, message or attachments.
nlohmann::ordered_json preview_json(const TicketDraft& draft,
                                    const nlohmann::json& ticket_defaults = nlohmann::json::object());

// The thread keys of `preview --config` (design.md "Senders and policy"):
// "thread": {"by", "ticket"} or null, and when it joins, "action": "reply"
// and "reply": what POST /tickets/ID/replies would carry. `ticket` is the
// id as text; digits are printed as a JSON number.
struct ThreadPreview {
  std::string by;      // "references" or "subject"
  std::string ticket;  // id text
};
void add_thread_preview(nlohmann::ordered_json& preview, const TicketDraft& draft,
                        const std::optional<ThreadPreview>& thread);

// Pretty-printed, UTF-8 kept as is, invalid bytes replaced (never throws).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace mailgate::mail
