// check-config and preview: offline commands, they contact nothing (but
// check-config --connect, in check_connect.cpp).
#include "cli.hpp"
#include "settings.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/preview.hpp"
#include "mailgate/mail/text_util.hpp"
#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/routing/router.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/pipeline/threading.hpp"
#include "mailgate/spool/spool.hpp"
#include "mailgate/text/file.hpp"

namespace mailgate::cli {

// Finds "--name VALUE" or "--name=VALUE"; removes it from args.
bool take_option(std::vector<std::string>& args, const std::string& name, std::string& value) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name && i + 1 < args.size()) {
      value = args[i + 1];
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      return true;
    }
    if (args[i].rfind(name + "=", 0) == 0) {
      value = args[i].substr(name.size() + 1);
      args.erase(args.begin() + static_cast<long>(i));
      return true;
    }
  }
  return false;
}

namespace {

void print_errors(const std::vector<config::ConfigError>& errors) {
  for (const auto& e : errors) std::cerr << e.to_string() << "\n";
}

}  // namespace

std::optional<config::Config> load_config_or_report(const std::string& file) {
  auto result = config::load_config_file(file);
  if (!result.config) print_errors(result.errors);
  return std::move(result.config);
}

std::unique_ptr<spool::Spool> open_spool_or_report(const config::Config& c, std::string_view command) {
  try {
    return spool::Spool::open(c.spool_dir, spool_limits(c));
  } catch (const std::exception& e) {
    std::cerr << "mailgate " << command << ": spool unusable: " << e.what() << "\n";
    return nullptr;
  }
}

int check_config(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file;
  const auto connect = std::find(args.begin(), args.end(), "--connect");
  const bool with_connect = connect != args.end();
  if (with_connect) args.erase(connect);
  if (!take_option(args, "--config", file) || !args.empty()) {
    std::cerr << "usage: mailgate check-config [--connect] --config FILE\n";
    return kExitUsage;
  }
  auto result = config::load_config_file(file);
  std::vector<std::string> errors;
  for (const auto& e : result.errors) errors.push_back(e.to_string());
  // Route patterns only RE2 can judge; they come as FILE:LINE:COL lines too.
  if (result.config && !routing::Router::build(*result.config, &errors)) result.config.reset();
  if (!result.config) {
    for (const auto& e : errors) std::cerr << e << "\n";
    std::cerr << file << ": " << errors.size() << " error" << (errors.size() == 1 ? "" : "s")
              << "; mailgate would not start\n";
    return kExitConfig;
  }
  if (with_connect) return check_connect(*result.config);
  std::cout << "# " << file << " is valid. Effective configuration (secrets masked):\n"
            << config::describe(*result.config);
  return kExitOk;
}

namespace {

// --recipient ADDR (repeatable), --sender ADDR, --source NAME: the envelope
// preview stands in for (design.md "Envelope").
routing::Envelope envelope_options(std::vector<std::string>& args) {
  routing::Envelope envelope;
  std::string value;
  while (take_option(args, "--recipient", value)) envelope.recipients.push_back(mail::ascii_lower(value));
  take_option(args, "--sender", envelope.mail_from);
  take_option(args, "--source", envelope.source);
  return envelope;
}

mail::PreviewDecision preview_decision(const routing::Decision& d) {
  mail::PreviewDecision p;
  p.action = std::string(routing::to_string(d.action));
  p.route = d.route;
  if (!d.reason.empty()) p.reason = d.reason;
  p.ticket_fields = d.ticket_fields;
  return p;
}

std::optional<std::string> read_input(const std::string& name) {
  if (name == "-") return text::read_stream(std::cin);
  return text::read_file(name);
}

// The ticket a previewed message would join, read from the spool's thread
// index read-only (never created: a spool without a database has no index).
std::optional<mail::ThreadPreview> thread_preview(const config::Config& c, std::string_view raw,
                                                  const mail::TicketDraft& draft) {
  if (!c.threading.enabled) return std::nullopt;
  auto matcher = pipeline::ThreadMatcher::build(c.threading);
  if (!matcher) return std::nullopt;
  auto index = spool::ThreadIndexReader::open(c.spool_dir);
  auto by_message = [&](const std::string& id) { return index ? index->thread_of(id) : std::nullopt; };
  auto by_ticket = [&](const std::string& id) { return index ? index->thread_of_ticket(id) : std::nullopt; };
  auto match = pipeline::offline_thread(*matcher, c.threading, pipeline::read_thread_headers(raw), draft.title,
                                        draft.user.address, by_message, by_ticket);
  if (!match) return std::nullopt;
  return mail::ThreadPreview{std::string(pipeline::to_string(match->by)), messenger::id_text(match->ticket_id)};
}

}  // namespace

int preview(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string config_file;
  bool have_config = take_option(args, "--config", config_file);
  routing::Envelope envelope = envelope_options(args);
  if (args.size() != 1) {
    std::cerr << "usage: mailgate preview FILE.eml [--config FILE] [--recipient ADDR]... [--sender ADDR] [--source NAME]\n";
    return kExitUsage;
  }
  config::Config cfg;  // without --config: the defaults (design.md)
  if (have_config) {
    auto loaded = load_config_or_report(config_file);
    if (!loaded) return kExitConfig;
    cfg = std::move(*loaded);
  }
  const mail::DraftOptions options = draft_options(cfg);
  std::vector<std::string> route_errors;
  auto router = routing::Router::build(cfg, &route_errors);
  if (!router) {
    for (const auto& e : route_errors) std::cerr << e << "\n";
    return kExitConfig;
  }
  auto raw = read_input(args[0]);
  if (!raw) {
    std::cerr << "mailgate preview: cannot read " << args[0] << "\n";
    return kExitDataErr;
  }
  auto result = mail::build_draft(*raw, options);
  if (!result.draft) {
    std::cerr << "mailgate preview: " << args[0] << ": " << result.error << "\n";
    return kExitDataErr;
  }
  auto decision = preview_decision(router->decide(*result.draft, envelope));
  auto json = mail::preview_json(*result.draft, decision);
  if (have_config) mail::add_thread_preview(json, *result.draft, thread_preview(cfg, *raw, *result.draft));
  std::cout << mail::dump_json(json) << "\n";
  return kExitOk;
}

}  // namespace mailgate::cli
