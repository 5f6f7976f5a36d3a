// Serialises a TicketDraft in the key order design.md fixes.
#include "mailgate/mail/preview.hpp"

namespace mailgate::mail {

nlohmann::ordered_json preview_json(const TicketDraft& d, const nlohmann::json& ticket_defaults) {
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
  if (ticket_defaults.is_object())
    for (const auto& [key, value] : ticket_defaults.items())
      if (!ticket.contains(key) && key != "creator") ticket[key] = value;
  j["ticket"] = std::move(ticket);
  j["skipped"] = ordered_json::array();
  for (const auto& s : d.skipped) j["skipped"].push_back({{"name", s.name}, {"reason", s.reason}});
  j["ignored"] = d.ignored ? ordered_json(*d.ignored) : ordered_json(nullptr);
  return j;
}

void add_thread_preview(nlohmann::ordered_json& j, const TicketDraft& d, const std::optional<ThreadPreview>& thread) {
  using nlohmann::ordered_json;
  if (!thread) {
    j["thread"] = nullptr;
    return;
  }
  const bool digits = !thread->ticket.empty() && thread->ticket.size() < 19 &&
                      thread->ticket.find_first_not_of("0123456789") == std::string::npos;
  const ordered_json ticket = digits ? ordered_json(std::stoll(thread->ticket)) : ordered_json(thread->ticket);
  // A decision that holds or ignores the mail stands; only a ticket becomes a reply.
  if (!j.contains("action") || j["action"] == "ticket") j["action"] = "reply";
  j["thread"] = {{"by", thread->by}, {"ticket", ticket}};
  ordered_json reply;
  reply["ticket"] = ticket;
  reply["message"] = d.reply_message;
  reply["attachments"] = ordered_json::array();
  for (const auto& m : d.media) reply["attachments"].push_back(m.ref);
  j["reply"] = std::move(reply);
}

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mailgate::mail
