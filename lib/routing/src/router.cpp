// Routing and policy: the first matching route gives the ticket fields (or
// ignore/hold), then the policy kinds the draft reported are weighed in
// design.md's order. Patterns are compiled once, here, with RE2.
#include "mailgate/routing/router.hpp"

#include <re2/re2.h>

#include <algorithm>

#include "mailgate/mail/text_util.hpp"

namespace mailgate::routing {

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Ticket: return "ticket";
    case Action::Ignore: return "ignore";
    case Action::Hold: return "hold";
  }
  return "ticket";
}

namespace {

using mail::ascii_lower;
using mail::iequals;

struct HeaderPattern {
  std::string name;
  std::unique_ptr<RE2> pattern;
};

struct CompiledRoute {
  const config::Route* route = nullptr;  // into Impl::config
  std::unique_ptr<RE2> subject;          // null: any subject
  std::vector<HeaderPattern> headers;
};

std::unique_ptr<RE2> compile(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);  // the error is reported with its position instead
  return std::make_unique<RE2>(pattern, options);
}

std::string at(const config::Config& c, const config::Position& p) {
  return c.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": ";
}

// "user@domain" matches that address, "@domain" every address of that domain.
bool address_matches(std::string_view address, const std::vector<std::string>& patterns) {
  std::string a = ascii_lower(address);
  std::string domain = a.substr(a.rfind('@') == std::string::npos ? a.size() : a.rfind('@'));
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return p.front() == '@' ? p == domain : p == a; });
}

std::string_view first_header(const mail::TicketDraft& draft, std::string_view name) {
  for (const auto& h : draft.headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

bool header_matches(const mail::TicketDraft& draft, const HeaderPattern& want) {
  return std::any_of(draft.headers.begin(), draft.headers.end(), [&](const mail::DecodedHeader& h) {
    return iequals(h.name, want.name) && RE2::PartialMatch(h.value, *want.pattern);
  });
}

// Every key given must match; a list matches when any entry does.
bool route_matches(const CompiledRoute& r, const mail::TicketDraft& draft, const Envelope& envelope) {
  const config::RouteMatch& m = r.route->match;
  if (!m.recipient.empty() && std::none_of(envelope.recipients.begin(), envelope.recipients.end(),
                                           [&](const std::string& rcpt) { return address_matches(rcpt, m.recipient); }))
    return false;
  if (!m.from.empty() && !address_matches(draft.user.address, m.from)) return false;
  if (r.subject && !RE2::PartialMatch(first_header(draft, "Subject"), *r.subject)) return false;
  for (const auto& h : r.headers)
    if (!header_matches(draft, h)) return false;
  if (!m.source.empty() && std::find(m.source.begin(), m.source.end(), envelope.source) == m.source.end())
    return false;
  return true;
}

// design.md's order within step (2).
int policy_rank(std::string_view kind) {
  if (kind == "own_address" || kind == "loop") return 0;
  if (kind == "bounce") return 1;
  if (kind == "auto_reply") return 2;
  if (kind == "bulk") return 3;
  return 4;  // unauthenticated, and kinds this router does not know
}

// "1h", "30m", "2d", "90s".
std::string show_duration(std::chrono::seconds s) {
  const long long n = s.count();
  if (n > 0 && n % 86400 == 0) return std::to_string(n / 86400) + "d";
  if (n > 0 && n % 3600 == 0) return std::to_string(n / 3600) + "h";
  if (n > 0 && n % 60 == 0) return std::to_string(n / 60) + "m";
  return std::to_string(n) + "s";
}

}  // namespace

struct Router::Impl {
  config::Config config;
  std::vector<CompiledRoute> routes;
  std::vector<std::string> own_addresses;  // lower-case

  const CompiledRoute* first_match(const mail::TicketDraft& draft, const Envelope& envelope) const {
    for (const auto& r : routes)
      if (route_matches(r, draft, envelope)) return &r;
    return nullptr;
  }

  Action action_for(std::string_view kind) const {
    const config::PolicyConfig& p = config.policy;
    if (kind == "own_address" || kind == "loop") return p.own_address;
    if (kind == "bounce") return p.bounce;
    if (kind == "auto_reply") return p.auto_reply;
    if (kind == "bulk") return p.bulk;
    if (kind == "unauthenticated")
      return config.senders.unauthenticated == config::Unauthenticated::Hold ? Action::Hold : Action::Ticket;
    return Action::Ticket;
  }

  // The draft's signals plus what only the config and envelope can tell.
  std::vector<mail::MailSignal> policy_kinds(const mail::TicketDraft& draft, const Envelope& envelope) const {
    std::vector<mail::MailSignal> kinds;
    if (std::find(own_addresses.begin(), own_addresses.end(), ascii_lower(draft.user.address)) != own_addresses.end())
      kinds.push_back({"own_address", "our own address (From: " + draft.user.address + ")"});
    // Only SMTP and LMTP know MAIL FROM for certain; elsewhere "" is "not given".
    if (envelope.mail_from.empty() && (envelope.source == "smtp" || envelope.source == "lmtp"))
      kinds.push_back({"bounce", "bounce (null sender, MAIL FROM:<>)"});
    for (const auto& s : draft.signals)
      if (s.kind != "no_sender") kinds.push_back(s);
    std::stable_sort(kinds.begin(), kinds.end(),
                     [](const auto& a, const auto& b) { return policy_rank(a.kind) < policy_rank(b.kind); });
    return kinds;
  }
};

Router::~Router() = default;

std::unique_ptr<Router> Router::build(const config::Config& config, std::vector<std::string>* errors) {
  std::unique_ptr<Router> router(new Router());
  router->impl_ = std::make_unique<Impl>();
  Impl& impl = *router->impl_;
  impl.config = config;
  bool ok = true;
  auto refuse = [&](const config::Position& p, const std::string& what, const RE2& re) {
    ok = false;
    if (errors) errors->push_back(at(impl.config, p) + what + " is not a valid regular expression: " + re.error());
  };
  for (const auto& route : impl.config.routes) {
    CompiledRoute compiled;
    compiled.route = &route;
    const std::string where = "route '" + route.name + "': match.";
    if (route.match.subject) {
      compiled.subject = compile(*route.match.subject);
      if (!compiled.subject->ok()) refuse(route.match.subject_at, where + "subject", *compiled.subject);
    }
    for (std::size_t i = 0; i < route.match.header.size(); ++i) {
      const auto& [name, pattern] = route.match.header[i];
      HeaderPattern h{name, compile(pattern)};
      config::Position p = i < route.match.header_at.size() ? route.match.header_at[i] : route.at;
      if (!h.pattern->ok()) refuse(p, where + "header." + name, *h.pattern);
      compiled.headers.push_back(std::move(h));
    }
    impl.routes.push_back(std::move(compiled));
  }
  if (!ok) return nullptr;
  if (config.smtp)
    for (const auto& a : config.smtp->accept)
      if (a.front() != '@') impl.own_addresses.push_back(ascii_lower(a));
  for (const auto& box : config.imap)
    if (box.username.find('@') != std::string::npos) impl.own_addresses.push_back(ascii_lower(box.username));
  return router;
}

Decision Router::decide(const mail::TicketDraft& draft, const Envelope& envelope, bool person_decided) const {
  Decision d;
  d.ticket_fields = impl_->config.ticket_defaults;
  const CompiledRoute* route = impl_->first_match(draft, envelope);
  if (route) {
    d.route = route->route->name;
    d.reason = "route " + route->route->name;
    for (const auto& [key, value] : route->route->ticket.items()) d.ticket_fields[key] = value;
  }
  // Not a matter of policy: there is no one to make the ticket for.
  for (const auto& s : draft.signals)
    if (s.kind == "no_sender") return Decision{Action::Ignore, d.route, s.reason, s.kind, d.ticket_fields};
  if (person_decided) return d;
  if (route && route->route->action != Action::Ticket) {
    d.action = route->route->action;
    d.kind = "route";
    return d;
  }
  for (auto& kind : impl_->policy_kinds(draft, envelope)) {
    Action action = impl_->action_for(kind.kind);
    if (action == Action::Ticket) continue;
    d.action = action;
    d.kind = std::move(kind.kind);
    d.reason = std::move(kind.reason);
    return d;
  }
  return d;
}

Decision Router::flood(Decision decision, const std::string& sender, int recent) const {
  const config::FloodPolicy& f = impl_->config.policy.flood;
  if (decision.action != Action::Ticket || f.max <= 0 || recent < f.max || f.action == Action::Ticket) return decision;
  decision.action = f.action;
  decision.kind = "flood";
  decision.reason = "flood: " + std::to_string(recent + 1) + " tickets from " + sender + " within " +
                    show_duration(f.per) + " (limit " + std::to_string(f.max) + ")";
  return decision;
}

const config::FloodPolicy& Router::flood_policy() const { return impl_->config.policy.flood; }

}  // namespace mailgate::routing
