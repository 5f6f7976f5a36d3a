// Routing and policy: what one drafted mail becomes before anything is
// posted (design.md "Routing" and "Senders and policy") — a ticket (with
// which fields), or no ticket now (ignore, hold), and why. Pure: no I/O,
// no clock; the processor supplies the flood count and records the result.
// Patterns are compiled once (RE2, linear time: subjects and headers are
// hostile input) when the Router is built from the config.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/ticket_draft.hpp"

namespace mailgate::routing {

// What the message arrived with (design.md "Envelope").
struct Envelope {
  std::string mail_from;                // "" for the null sender <>
  std::vector<std::string> recipients;  // every accepted RCPT TO, lower-case
  std::string source;                   // smtp, lmtp, deliver, imap:NAME
};

using Action = config::MailAction;
std::string_view to_string(Action action);  // "ticket", "ignore", "hold"

struct Decision {
  Action action = Action::Ticket;
  std::optional<std::string> route;  // the matched route's name
  // Why, for every action but a plain ticket: "bulk mail (Precedence: list)";
  // a ticket from a route: "route billing".
  std::string reason;
  // A short stable label for metrics and `queue list`: "route", "auto_reply",
  // "bounce", "bulk", "own_address", "loop", "unauthenticated", "flood", "no_sender".
  std::string kind;
  // tickets.defaults with the route's ticket: merged over it (JSON types kept).
  nlohmann::json ticket_fields = nlohmann::json::object();
};

class Router {
 public:
  // Compiles every pattern of config.routes. A pattern RE2 refuses is an
  // error "FILE:LINE:COL: …" in `errors` (check-config prints them) and
  // build returns null; serve refuses to start with it.
  static std::unique_ptr<Router> build(const config::Config& config, std::vector<std::string>* errors = nullptr);
  ~Router();

  // Steps (1) and (2) of design.md's order: a route whose action is ignore
  // or hold, then the policy kinds. `person_decided` (queue release/retry)
  // is a ticket whatever routes and policy say — but the first matching
  // route still names itself and sets its ticket fields. A draft with no
  // sender address is always ignored (kind no_sender): no one to make the
  // ticket for. Flood (3) is the caller's: it counts, then calls flood().
  Decision decide(const mail::TicketDraft& draft, const Envelope& envelope, bool person_decided = false) const;
  // Step (3): `decision` (a ticket) after this sender has had `recent`
  // tickets within policy.flood.per.
  Decision flood(Decision decision, const std::string& sender, int recent) const;
  const config::FloodPolicy& flood_policy() const;

 private:
  Router() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailgate::routing
