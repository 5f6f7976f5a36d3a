// Routing and policy. (Placeholder implementation: the draft's own ignore
// reason and tickets.defaults, as before routes existed; routes, senders
// and policy kinds are being built on a branch.)
#include "mailgate/routing/router.hpp"

namespace mailgate::routing {

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Ticket: return "ticket";
    case Action::Ignore: return "ignore";
    case Action::Hold: return "hold";
  }
  return "ticket";
}

struct Router::Impl {
  config::Config config;
};

Router::~Router() = default;

std::unique_ptr<Router> Router::build(const config::Config& config, std::vector<std::string>*) {
  std::unique_ptr<Router> r(new Router());
  r->impl_ = std::make_unique<Impl>(Impl{config});
  return r;
}

Decision Router::decide(const mail::TicketDraft& draft, const Envelope&, bool person_decided) const {
  Decision d;
  d.ticket_fields = impl_->config.ticket_defaults;
  if (draft.ignored && !person_decided) {
    d.action = Action::Ignore;
    d.reason = *draft.ignored;
    d.kind = draft.ignored->substr(0, draft.ignored->find(" ("));
  }
  return d;
}

Decision Router::flood(Decision decision, const std::string&, int) const { return decision; }

const config::FloodPolicy& Router::flood_policy() const { return impl_->config.policy.flood; }

}  // namespace mailgate::routing
