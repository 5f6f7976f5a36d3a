// The stable JSON of `mailgate preview` (design.md): what would be sent.
#pragma once

#include <nlohmann/json.hpp>

#include "mailgate/mail/ticket_draft.hpp"

namespace mailgate::mail {

// `ticket_defaults` (config tickets.defaults) are merged into "ticket"
// without overriding title, message or attachments.
nlohmann::ordered_json preview_json(const TicketDraft& draft,
                                    const nlohmann::json& ticket_defaults = nlohmann::json::object());

// Pretty-printed, UTF-8 kept as is, invalid bytes replaced (never throws).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace mailgate::mail
