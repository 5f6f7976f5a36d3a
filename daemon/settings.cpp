// config::Config → each room's settings (settings.hpp says the rules).
#include "settings.hpp"

#include <atomic>

namespace mailgate::cli {

messenger::MessengerSettings messenger_settings(const config::Config& c) {
  messenger::MessengerSettings s;
  s.api_key = c.messenger.api_key;
  s.secret = c.messenger.secret.value;
  s.auth_url = c.messenger.auth_url;
  s.tls.ca_file = c.messenger.ca_file;
  s.allow_plain_http = c.messenger.allow_plain_http;
  s.max_in_flight = static_cast<std::size_t>(c.messenger.max_in_flight);
  return s;
}

namespace {

bool speaks_lmtp(config::SmtpProtocol protocol) {
  switch (protocol) {
    case config::SmtpProtocol::Smtp: return false;
    case config::SmtpProtocol::Lmtp: return true;
  }
  return false;  // not reached: the switch names every protocol
}

}  // namespace

smtp::SmtpSettings smtp_settings(const config::SmtpConfig& c) {
  smtp::SmtpSettings s;
  for (const auto& l : c.listen) s.listen.emplace_back(l.host, l.port);
  s.lmtp = speaks_lmtp(c.protocol);
  s.hostname = c.hostname;
  s.max_message_size = c.max_message_size;
  s.accept = c.accept;
  s.limits.command_timeout = c.timeout;
  s.limits.data_timeout = c.data_timeout;
  s.limits.max_connections = static_cast<std::size_t>(c.max_connections);
  s.limits.max_connections_per_ip = static_cast<std::size_t>(c.max_connections_per_ip);
  s.tls_cert_file = c.tls ? c.tls->cert_file : "";
  s.tls_key_file = c.tls ? c.tls->key_file : "";
  return s;
}

// security, auth and after_import are the configuration's own types (no
// translation: imap uses config::ImapSecurity, ImapAuth, AfterImport).
imap::MailboxSettings mailbox_settings(const config::ImapMailboxConfig& m) {
  imap::MailboxSettings s;
  s.name = m.name;
  s.host = m.host;
  s.port = m.port;
  s.security = m.security;
  s.ca_file = m.ca_file;
  s.username = m.username;
  s.password = m.password.value;
  s.auth = m.auth;
  s.token_file = m.token_file;
  s.token_command = m.token_command;
  s.folder = m.folder;
  s.after_import = m.after_import;
  s.move_to = m.move_to;
  s.idle = m.idle;
  s.poll_interval = m.poll_interval;
  s.max_message_size = m.max_message_size;
  s.oversized_folder = m.oversized_folder;
  s.progress_interval = m.progress_interval;
  return s;
}

spool::SpoolLimits spool_limits(const config::Config& c) {
  spool::SpoolLimits s;
  s.max_queue_bytes = c.queue.max_size;
  s.min_free_bytes = c.queue.min_free_space;
  return s;
}

mail::DraftOptions draft_options(const config::Config& c) {
  mail::DraftOptions o;
  o.sender = c.mail.sender;  // the configuration's own type (mail::SenderPreference)
  o.max_media_bytes = c.mail.max_attachment_size;
  o.loop_id = c.mail.loop_id;
  o.trusted_lists = c.senders.trusted_lists;
  o.authserv_id = c.senders.authserv_id;
  o.max_media = static_cast<std::size_t>(c.mail.max_media);
  o.max_processing_time = c.mail.max_processing_time;
  o.strip_quoted = c.threading.strip_quoted;
  // Processor::stop() sets it: a draft in progress gives up at shutdown.
  o.cancel = std::make_shared<std::atomic<bool>>(false);
  return o;
}

bool dry_run(config::MessengerMode mode) {
  switch (mode) {
    case config::MessengerMode::Live: return false;
    case config::MessengerMode::DryRun: return true;
  }
  return false;  // not reached: the switch names every mode
}

pipeline::ProcessorSettings processor_settings(const config::Config& c, std::shared_ptr<const routing::Router> router) {
  pipeline::ProcessorSettings p;
  p.router = std::move(router);
  p.concurrency = static_cast<std::size_t>(c.queue.concurrency);
  p.draft = draft_options(c);
  p.ticket_defaults = c.ticket_defaults;
  p.dry_run = dry_run(c.messenger.mode);
  p.give_up_after = c.queue.give_up_after;
  p.external_id = c.messenger.external_id;
  p.threading = c.threading;
  return p;
}

log::Format log_format(config::LogFormat format) {
  switch (format) {
    case config::LogFormat::Text: return log::Format::Text;
    case config::LogFormat::Json: return log::Format::Json;
  }
  return log::Format::Text;  // not reached: the switch names every format
}

std::uint64_t deliver_max_size(const config::Config& c) {
  return c.smtp ? c.smtp->max_message_size : config::SmtpConfig{}.max_message_size;
}

}  // namespace mailgate::cli
