// The config → settings translation (daemon/settings.cpp): a configuration
// that sets nothing gives every library exactly its own defaults (a default
// changed on one side only fails here), every key reaches its field, and
// each choice's words are read and printed through one table.
#include "settings.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace mailgate;
using namespace mailgate::config;

namespace {

// The smallest file the parser takes: its defaults, not the structs', are
// what an operator gets.
const char* kMinimal = R"(spool_dir: /tmp/spool
messenger:
  mode: dry-run
smtp:
  listen: ["127.0.0.1:2525"]
  accept: ["support@example.com"]
imap:
  - name: box
    host: imap.example.com
    username: support
    password_env: PATH
)";

Config load(const std::string& yaml) {
  auto r = load_config_text(yaml, "t.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  if (!r.config) throw std::runtime_error("the test configuration does not load");
  return std::move(*r.config);
}

void expect_smtp_defaults(const smtp::SmtpSettings& s) {
  const smtp::SmtpSettings library;
  EXPECT_EQ(s.lmtp, library.lmtp);
  EXPECT_EQ(s.max_message_size, library.max_message_size);
  EXPECT_EQ(s.tls_cert_file, library.tls_cert_file);
  EXPECT_EQ(s.tls_key_file, library.tls_key_file);
  EXPECT_EQ(s.limits.command_timeout, library.limits.command_timeout);
  EXPECT_EQ(s.limits.data_timeout, library.limits.data_timeout);
  EXPECT_EQ(s.limits.max_connections, library.limits.max_connections);
  EXPECT_EQ(s.limits.max_connections_per_ip, library.limits.max_connections_per_ip);
}

void expect_mailbox_defaults(const imap::MailboxSettings& s) {
  const imap::MailboxSettings library;
  EXPECT_EQ(s.port, library.port);
  EXPECT_EQ(s.security, library.security);
  EXPECT_EQ(s.ca_file, library.ca_file);
  EXPECT_EQ(s.auth, library.auth);
  EXPECT_EQ(s.token_file, library.token_file);
  EXPECT_EQ(s.token_command, library.token_command);
  EXPECT_EQ(s.folder, library.folder);
  EXPECT_EQ(s.after_import, library.after_import);
  EXPECT_EQ(s.move_to, library.move_to);
  EXPECT_EQ(s.idle, library.idle);
  EXPECT_EQ(s.poll_interval, library.poll_interval);
  EXPECT_EQ(s.max_message_size, library.max_message_size);
  EXPECT_EQ(s.oversized_folder, library.oversized_folder);
  EXPECT_EQ(s.progress_interval, library.progress_interval);
}

void expect_draft_defaults(const mail::DraftOptions& o) {
  const mail::DraftOptions library;
  EXPECT_EQ(o.sender, library.sender);
  EXPECT_EQ(o.max_media_bytes, library.max_media_bytes);
  EXPECT_EQ(o.max_media, library.max_media);
  EXPECT_EQ(o.max_processing_time, library.max_processing_time);
  EXPECT_EQ(o.loop_id, library.loop_id);
  EXPECT_EQ(o.strip_quoted, library.strip_quoted);
  EXPECT_EQ(o.trusted_lists, library.trusted_lists);
  EXPECT_EQ(o.authserv_id, library.authserv_id);
  ASSERT_TRUE(o.cancel);  // Processor::stop() needs one to set
  EXPECT_FALSE(o.cancel->load());
}

void expect_messenger_defaults(const messenger::MessengerSettings& s) {
  const messenger::MessengerSettings library;
  EXPECT_EQ(s.auth_url, library.auth_url);
  EXPECT_EQ(s.tls.ca_file, library.tls.ca_file);
  EXPECT_EQ(s.allow_plain_http, library.allow_plain_http);
  EXPECT_EQ(s.max_in_flight, library.max_in_flight);
}

void expect_processor_defaults(const pipeline::ProcessorSettings& p) {
  const pipeline::ProcessorSettings library;
  EXPECT_EQ(p.concurrency, library.concurrency);
  EXPECT_EQ(p.ticket_defaults, library.ticket_defaults);
  EXPECT_EQ(p.give_up_after, library.give_up_after);
  EXPECT_EQ(p.external_id, library.external_id);
  EXPECT_EQ(p.threading.enabled, library.threading.enabled);
  EXPECT_EQ(p.threading.remember, library.threading.remember);
  expect_draft_defaults(p.draft);
}

void expect_spool_defaults(const spool::SpoolLimits& s) {
  const spool::SpoolLimits library;
  EXPECT_EQ(s.max_queue_bytes, library.max_queue_bytes);
  EXPECT_EQ(s.min_free_bytes, library.min_free_bytes);
}

}  // namespace

TEST(SettingsDefaults, TheDefaultConfigGivesEveryLibraryItsOwnDefaults) {
  const Config c;
  expect_smtp_defaults(cli::smtp_settings(SmtpConfig{}));
  expect_mailbox_defaults(cli::mailbox_settings(ImapMailboxConfig{}));
  expect_messenger_defaults(cli::messenger_settings(c));
  expect_processor_defaults(cli::processor_settings(c, nullptr));
  expect_draft_defaults(cli::draft_options(c));
  expect_spool_defaults(cli::spool_limits(c));
  EXPECT_EQ(cli::deliver_max_size(c), smtp::SmtpSettings{}.max_message_size);
  EXPECT_EQ(cli::dry_run(c.messenger.mode), pipeline::ProcessorSettings{}.dry_run);
}

TEST(SettingsDefaults, AFileThatSetsNothingGivesEveryLibraryItsOwnDefaults) {
  const Config c = load(kMinimal);
  ASSERT_TRUE(c.smtp);
  ASSERT_EQ(c.imap.size(), 1u);
  expect_smtp_defaults(cli::smtp_settings(*c.smtp));
  expect_mailbox_defaults(cli::mailbox_settings(c.imap[0]));
  expect_messenger_defaults(cli::messenger_settings(c));
  expect_processor_defaults(cli::processor_settings(c, nullptr));
  expect_spool_defaults(cli::spool_limits(c));
  EXPECT_EQ(cli::deliver_max_size(c), smtp::SmtpSettings{}.max_message_size);
}

TEST(Settings, EveryKeyReachesItsField) {
  const Config c = load(R"(spool_dir: /tmp/spool
messenger: {mode: dry-run, auth_url: "https://api.example.com/v1", max_in_flight: 3, external_id: true}
smtp:
  listen: ["127.0.0.1:2525", "[::1]:2526"]
  protocol: lmtp
  hostname: mx.example.com
  max_message_size: 1MB
  accept: ["support@example.com"]
  timeout: 40s
  data_timeout: 15m
  max_connections: 7
  max_connections_per_ip: 3
imap:
  - {name: box, host: h, port: 1143, security: starttls, username: u, password_env: PATH, auth: login,
     folder: Support, after_import: "move:Done", idle: false, poll_interval: 2m, max_message_size: 2MB,
     oversized: "move:Big", progress_interval: 3s}
mail: {sender: reply-to, max_attachment_size: 1MB, loop_id: ours, max_media: 9, max_processing_time: 5s}
queue: {max_size: 10MB, min_free_space: 1MB, concurrency: 2, give_up_after: 1h}
senders: {trusted_lists: [list.example.com], authserv_id: mx.example.com}
threading: {strip_quoted: false}
)");
  const auto s = cli::smtp_settings(*c.smtp);
  ASSERT_EQ(s.listen.size(), 2u);
  EXPECT_EQ(s.listen[1], (std::pair<std::string, std::uint16_t>{"::1", 2526}));
  EXPECT_TRUE(s.lmtp);
  EXPECT_EQ(s.hostname, "mx.example.com");
  EXPECT_EQ(s.max_message_size, 1024u * 1024);
  EXPECT_EQ(s.limits.command_timeout, std::chrono::seconds(40));
  EXPECT_EQ(s.limits.data_timeout, std::chrono::minutes(15));
  EXPECT_EQ(s.limits.max_connections, 7u);
  EXPECT_EQ(s.limits.max_connections_per_ip, 3u);
  const auto m = cli::mailbox_settings(c.imap[0]);
  EXPECT_EQ(m.port, 1143);
  EXPECT_EQ(m.security, imap::Security::StartTls);
  EXPECT_EQ(m.auth, imap::AuthMethod::Login);
  EXPECT_EQ(m.password, std::getenv("PATH"));
  EXPECT_EQ(m.folder, "Support");
  EXPECT_EQ(m.after_import, imap::AfterImport::Move);
  EXPECT_EQ(m.move_to, "Done");
  EXPECT_FALSE(m.idle);
  EXPECT_EQ(m.poll_interval, std::chrono::minutes(2));
  EXPECT_EQ(m.max_message_size, 2u * 1024 * 1024);
  EXPECT_EQ(m.oversized_folder, "Big");
  EXPECT_EQ(m.progress_interval, std::chrono::seconds(3));
  const auto api = cli::messenger_settings(c);
  EXPECT_EQ(api.auth_url, "https://api.example.com/v1");
  EXPECT_EQ(api.max_in_flight, 3u);
  const auto p = cli::processor_settings(c, nullptr);
  EXPECT_TRUE(p.dry_run);
  EXPECT_TRUE(p.external_id);
  EXPECT_EQ(p.concurrency, 2u);
  EXPECT_EQ(p.give_up_after, std::chrono::hours(1));
  EXPECT_EQ(p.draft.sender, mail::SenderPreference::ReplyTo);
  EXPECT_EQ(p.draft.max_media_bytes, 1024u * 1024);
  EXPECT_EQ(p.draft.loop_id, "ours");
  EXPECT_EQ(p.draft.max_media, 9u);
  EXPECT_EQ(p.draft.max_processing_time, std::chrono::seconds(5));
  EXPECT_EQ(p.draft.trusted_lists, std::vector<std::string>{"list.example.com"});
  EXPECT_EQ(p.draft.authserv_id, "mx.example.com");
  EXPECT_FALSE(p.draft.strip_quoted);
  const auto limits = cli::spool_limits(c);
  EXPECT_EQ(limits.max_queue_bytes, 10u * 1024 * 1024);
  EXPECT_EQ(limits.min_free_bytes, 1024u * 1024);
  EXPECT_EQ(cli::deliver_max_size(c), 1024u * 1024);
}

// smtp.data_timeout: today's effective value when not given (twice
// smtp.timeout), shown by check-config either way.
TEST(Settings, DataTimeoutIsTwiceTheTimeoutUnlessGiven) {
  const std::string head = "messenger: {mode: dry-run}\nsmtp:\n  listen: [\"127.0.0.1:2525\"]\n  accept: [\"@example.com\"]\n";
  const Config derived = load(head + "  timeout: 45s\n");
  EXPECT_EQ(cli::smtp_settings(*derived.smtp).limits.data_timeout, std::chrono::seconds(90));
  EXPECT_NE(describe(derived).find("data_timeout: 90s"), std::string::npos) << describe(derived);
  const Config given = load(head + "  timeout: 45s\n  data_timeout: 10s\n");
  EXPECT_EQ(cli::smtp_settings(*given.smtp).limits.data_timeout, std::chrono::seconds(10));
  EXPECT_NE(describe(given).find("data_timeout: 10s"), std::string::npos) << describe(given);
}

TEST(Settings, LogFormatAndModeTranslate) {
  EXPECT_EQ(cli::log_format(LogFormat::Text), log::Format::Text);
  EXPECT_EQ(cli::log_format(LogFormat::Json), log::Format::Json);
  EXPECT_FALSE(cli::dry_run(MessengerMode::Live));
  EXPECT_TRUE(cli::dry_run(MessengerMode::DryRun));
}

// ---- each choice: its words (the file format), read and printed by one table ----

namespace {

template <class Enum>
void expect_words(std::vector<Word<Enum>> expected) {
  ASSERT_EQ(Words<Enum>::table.size(), expected.size());
  for (const auto& w : expected) {
    EXPECT_EQ(to_string(w.value), w.word);
    EXPECT_EQ(from_string<Enum>(w.word), w.value) << w.word;
  }
  EXPECT_EQ(from_string<Enum>("no-such-word"), std::nullopt);
}

// The word written in the file comes back out of check-config's description.
void expect_read_and_shown(const std::string& yaml_tail, const std::string& shown) {
  const Config c = load(std::string(kMinimal) + yaml_tail);
  EXPECT_NE(describe(c).find(shown), std::string::npos) << shown << " in\n" << describe(c);
}

}  // namespace

TEST(Choices, EveryValueHasItsWordAndComesBack) {
  expect_words<MessengerMode>({{MessengerMode::Live, "live"}, {MessengerMode::DryRun, "dry-run"}});
  expect_words<SmtpProtocol>({{SmtpProtocol::Smtp, "smtp"}, {SmtpProtocol::Lmtp, "lmtp"}});
  expect_words<ImapSecurity>({{ImapSecurity::Tls, "tls"}, {ImapSecurity::StartTls, "starttls"}, {ImapSecurity::None, "none"}});
  expect_words<ImapAuth>({{ImapAuth::Auto, "auto"}, {ImapAuth::Login, "login"}, {ImapAuth::Plain, "plain"},
                          {ImapAuth::XOAuth2, "xoauth2"}});
  expect_words<AfterImport>({{AfterImport::Seen, "seen"}, {AfterImport::Delete, "delete"}, {AfterImport::Move, "move"}});
  expect_words<SenderField>({{SenderField::From, "from"}, {SenderField::ReplyTo, "reply-to"}});
  expect_words<LogFormat>({{LogFormat::Text, "text"}, {LogFormat::Json, "json"}});
  expect_words<MailAction>({{MailAction::Ticket, "ticket"}, {MailAction::Ignore, "ignore"}, {MailAction::Hold, "hold"}});
  expect_words<ThreadAllow>({{ThreadAllow::Creator, "creator"}, {ThreadAllow::Any, "any"}});
  expect_words<ClosedTicket>({{ClosedTicket::Reopen, "reopen"}, {ClosedTicket::NewTicket, "new_ticket"},
                              {ClosedTicket::Reply, "reply"}});
  expect_words<Unauthenticated>({{Unauthenticated::Accept, "accept"}, {Unauthenticated::Hold, "hold"}});
}

TEST(Choices, ErrorsNameEveryWord) {
  EXPECT_EQ(word_list<ImapSecurity>(), "tls, starttls or none");
  EXPECT_EQ(word_list<LogFormat>(), "text or json");
  auto r = load_config_text(std::string(kMinimal) + "log: {format: xml}\n", "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "t.yaml:12:15: log.format must be text or json, not 'xml'");
}

TEST(Choices, TheParserAndCheckConfigUseTheSameWords) {
  expect_read_and_shown("log: {format: json}\n", "format: json");
  expect_read_and_shown("mail: {sender: reply-to}\n", "sender: reply-to");
  expect_read_and_shown("threading: {allow: any, closed: new_ticket}\n", "allow: any");
  expect_read_and_shown("threading: {allow: any, closed: new_ticket}\n", "closed: new_ticket");
  expect_read_and_shown("senders: {authserv_id: mx, unauthenticated: hold}\n", "unauthenticated: hold");
  expect_read_and_shown("policy: {bulk: ticket, flood: {action: ignore}}\n", "bulk: ticket");
  expect_read_and_shown("policy: {bulk: ticket, flood: {action: ignore}}\n", "action: ignore");
  const std::string mailbox = R"(  - {name: two, host: h, username: u, password_env: PATH, security: none, auth: plain,
     after_import: "move:Old"}
)";
  const Config c = load(std::string(kMinimal) + mailbox);
  ASSERT_EQ(c.imap.size(), 2u);
  EXPECT_EQ(c.imap[1].security, ImapSecurity::None);
  EXPECT_EQ(c.imap[1].port, ImapMailboxConfig::kPlainPort);
  const std::string shown = describe(c);
  EXPECT_NE(shown.find("security: none"), std::string::npos) << shown;
  EXPECT_NE(shown.find("auth: plain"), std::string::npos) << shown;
  EXPECT_NE(shown.find("after_import: move:Old"), std::string::npos) << shown;
  EXPECT_NE(shown.find("mode: dry-run"), std::string::npos) << shown;
  EXPECT_NE(shown.find("protocol: smtp"), std::string::npos) << shown;
}
