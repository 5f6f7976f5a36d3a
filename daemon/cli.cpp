// check-config and preview: offline commands, they contact nothing (but
// check-config --connect, in check_connect.cpp).
#include "cli.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/preview.hpp"
#include "mailgate/mail/text_util.hpp"
#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/routing/router.hpp"

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

mail::DraftOptions draft_options(const config::Config& c) {
  mail::DraftOptions o;
  o.sender = c.mail.sender == config::SenderField::ReplyTo ? mail::SenderPreference::ReplyTo
                                                           : mail::SenderPreference::From;
  o.max_media_bytes = c.mail.max_attachment_size;
  o.loop_id = c.mail.loop_id;
  o.trusted_lists = c.senders.trusted_lists;
  o.authserv_id = c.senders.authserv_id;
  o.max_media = static_cast<std::size_t>(c.mail.max_media);
  o.max_processing_time = c.mail.max_processing_time;
  // Processor::stop() sets it: a draft in progress gives up at shutdown.
  o.cancel = std::make_shared<std::atomic<bool>>(false);
  return o;
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
  std::stringstream ss;
  if (name == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream f(name, std::ios::binary);
  if (!f) return std::nullopt;
  ss << f.rdbuf();
  return ss.str();
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
  mail::DraftOptions options;
  if (have_config) {
    auto loaded = load_config_or_report(config_file);
    if (!loaded) return kExitConfig;
    cfg = std::move(*loaded);
    options = draft_options(cfg);
  }
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
  std::cout << mail::dump_json(mail::preview_json(*result.draft, decision)) << "\n";
  return kExitOk;
}

}  // namespace mailgate::cli
