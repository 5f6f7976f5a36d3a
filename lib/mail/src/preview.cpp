// Serialises a TicketDraft in the key order design.md fixes.
#include "mailgate/mail/preview.hpp"

namespace mailgate::mail {

nlohmann::ordered_json preview_json(const TicketDraft& d, const PreviewDecision& decision) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["user"] = {{"name", d.user.name}, {"address", d.user.address}};
  j["media"] = ordered_json::array();
  ordered_json attachments = ordered_json::array();
  for (const auto& m : d.media) {
    ordered_json item;
    item["ref"] = m.ref;
    item["name"] = m.name;
    item["content_type"] = m.content_type;
    item["size"] = m.bytes.size();
    item["inline"] = m.inline_image;
    item["content_id"] = m.content_id.empty() ? ordered_json(nullptr) : ordered_json(m.content_id);
    item["sha256"] = m.sha256;
    j["media"].push_back(std::move(item));
    attachments.push_back(m.ref);
  }
  ordered_json ticket;
  ticket["title"] = d.title;
  ticket["message"] = d.message;
  ticket["attachments"] = std::move(attachments);
  if (decision.ticket_fields.is_object())
    for (const auto& [key, value] : decision.ticket_fields.items())
      if (!ticket.contains(key) && key != "creator") ticket[key] = value;
  j["ticket"] = std::move(ticket);
  j["skipped"] = ordered_json::array();
  for (const auto& s : d.skipped) j["skipped"].push_back({{"name", s.name}, {"reason", s.reason}});
  const bool no_ticket_now = decision.action == "ignore" || decision.action == "hold";
  j["ignored"] = no_ticket_now && decision.reason ? ordered_json(*decision.reason) : ordered_json(nullptr);
  j["action"] = decision.action;
  j["route"] = decision.route ? ordered_json(*decision.route) : ordered_json(nullptr);
  j["reason"] = decision.reason ? ordered_json(*decision.reason) : ordered_json(nullptr);
  // Threading adds "thread" and "reply" here, after "reason" (design.md).
  return j;
}

nlohmann::ordered_json preview_json(const TicketDraft& d, const nlohmann::json& ticket_defaults) {
  PreviewDecision decision;
  decision.ticket_fields = ticket_defaults;
  if (d.ignored) {
    decision.action = "ignore";
    decision.reason = *d.ignored;
  }
  return preview_json(d, decision);
}

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mailgate::mail
