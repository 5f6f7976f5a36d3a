// The stable JSON of `mailgate preview` (design.md): what would be sent.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "mailgate/mail/ticket_draft.hpp"

namespace mailgate::mail {

// What routing and policy decided (lib/routing's Decision, as preview prints
// it; mail cannot depend on routing, daemon/cli.cpp converts).
struct PreviewDecision {
  std::string action = "ticket";             // ticket | reply | ignore | hold
  std::optional<std::string> route;          // the matched route's name
  std::optional<std::string> reason;         // null for a plain ticket
  nlohmann::json ticket_fields = nlohmann::json::object();  // tickets.defaults + the route's ticket:
};

// Keys in design.md's order: user, media, ticket, skipped, ignored, action,
// route, reason (then thread and reply, see preview.cpp). `ticket_fields`
// are merged into "ticket" without overriding title, message or attachments.
nlohmann::ordered_json preview_json(const TicketDraft& draft, const PreviewDecision& decision);

// Without a routing decision (fuzz target, processor dry-run): the draft's
// first signal, if any, stands as an ignore.
nlohmann::ordered_json preview_json(const TicketDraft& draft,
                                    const nlohmann::json& ticket_defaults = nlohmann::json::object());

// Pretty-printed, UTF-8 kept as is, invalid bytes replaced (never throws).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace mailgate::mail
