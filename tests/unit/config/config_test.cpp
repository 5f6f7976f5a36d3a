// The configuration file: every problem reported with its position, all at
// once; secrets loaded but never shown.
#include "mailgate/config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

using namespace mailgate::config;

namespace {
const char* kMinimal = R"(spool_dir: /tmp/spool
messenger:
  mode: dry-run
smtp:
  listen: ["127.0.0.1:2525"]
  accept: ["support@example.com"]
)";

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& e : load_config_text(yaml, "t.yaml").errors) out.push_back(e.to_string());
  return out;
}
}  // namespace

TEST(Config, MinimalDryRunIsValid) {
  auto r = load_config_text(kMinimal, "t.yaml");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].to_string());
  EXPECT_EQ(r.config->messenger.mode, MessengerMode::DryRun);
  ASSERT_TRUE(r.config->smtp);
  EXPECT_EQ(r.config->smtp->listen[0].port, 2525);
  EXPECT_EQ(r.config->smtp->max_message_size, 25u * 1024 * 1024);
}

TEST(Config, TheDocumentedExampleIsValid) {
  auto r = load_config_file(MAILGATE_SOURCE_DIR "/config/mailgate.example.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->messenger.mode, MessengerMode::DryRun);
}

TEST(Config, UnknownKeyWithLineAndColumn) {
  auto errors = errors_of(std::string(kMinimal) + "smtp_typo: 1\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("t.yaml:7:1: unknown key 'smtp_typo'", 0), 0u) << errors[0];
}

TEST(Config, WrongTypesAndBadValuesAllReported) {
  auto errors = errors_of(R"(messenger:
  mode: dry-run
  max_in_flight: lots
smtp:
  listen: ["127.0.0.1:99999"]
  accept: ["support@example.com"]
  max_message_size: huge
imap:
  - name: box
    host: imap.example.com
    username: u
    password_env: MAILGATE_TEST_UNSET_VARIABLE
    after_import: archive
    poll_interval: soon
)");
  ASSERT_EQ(errors.size(), 6u);
  EXPECT_EQ(errors[0], "t.yaml:3:18: 'max_in_flight' must be a whole number");
  EXPECT_EQ(errors[1].rfind("t.yaml:5:12: listen address '127.0.0.1:99999'", 0), 0u) << errors[1];
  EXPECT_EQ(errors[2].rfind("t.yaml:7:21: 'max_message_size' must be a size", 0), 0u) << errors[2];
  EXPECT_EQ(errors[3].rfind("t.yaml:12:19: environment variable MAILGATE_TEST_UNSET_VARIABLE is not set", 0), 0u) << errors[3];
  EXPECT_EQ(errors[4].rfind("t.yaml:13:19: after_import must be", 0), 0u) << errors[4];
  EXPECT_EQ(errors[5].rfind("t.yaml:14:20: 'poll_interval' must be a duration", 0), 0u) << errors[5];
}

TEST(Config, MissingRequiredKeys) {
  auto errors = errors_of("messenger:\n  auth_url: https://api.inbenta.io/v1\nsmtp:\n  listen: 127.0.0.1:25\n");
  // live mode needs api_key and a secret; smtp needs accept.
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("missing required key 'api_key'"), std::string::npos);
  EXPECT_NE(errors[1].find("missing 'secret_file' or 'secret_env'"), std::string::npos);
  EXPECT_NE(errors[2].find("smtp.accept must list"), std::string::npos);
}

TEST(Config, YamlSyntaxErrorHasPosition) {
  auto errors = errors_of("messenger:\n  mode: [dry-run\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("t.yaml:", 0), 0u);
  EXPECT_NE(errors[0].find("YAML syntax error"), std::string::npos);
}

TEST(Config, DuplicateKeysAreErrors) {
  auto errors = errors_of(std::string(kMinimal) + "spool_dir: /elsewhere\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("duplicate key 'spool_dir'"), std::string::npos);
}

TEST(Config, PlainHttpNeedsExplicitConsent) {
  auto errors = errors_of("messenger:\n  mode: dry-run\n  auth_url: http://127.0.0.1:8080/v1\nsmtp: {listen: 127.0.0.1:1, accept: [a@b]}\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("allow_plain_http"), std::string::npos);
}

TEST(Config, SecretsAreLoadedButNeverDescribed) {
  std::string path = ::testing::TempDir() + "/mailgate-secret";
  std::ofstream(path) << "s3cr3t-value\n";
  setenv("MAILGATE_TEST_IMAP_PASSWORD", "imap-pass-value", 1);
  auto r = load_config_text("messenger:\n  api_key: key-1234567890\n  secret_file: " + path +
                                "\nimap:\n  - {name: b, host: h, username: u, password_env: MAILGATE_TEST_IMAP_PASSWORD}\n",
                            "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].to_string();
  EXPECT_EQ(r.config->messenger.secret.value, "s3cr3t-value");
  EXPECT_EQ(r.config->imap[0].password.value, "imap-pass-value");
  std::string shown = describe(*r.config);
  EXPECT_EQ(shown.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(shown.find("imap-pass"), std::string::npos);
  EXPECT_EQ(shown.find("key-1234567890"), std::string::npos);
  EXPECT_NE(shown.find("****7890"), std::string::npos);
}

TEST(Config, ImapXoauth2TakesATokenSourceInsteadOfAPassword) {
  const std::string head = "messenger: {mode: dry-run}\nimap:\n  - {name: o, host: h, username: u, auth: xoauth2";
  auto ok = load_config_text(head + ", token_command: /bin/echo-token}\n", "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].to_string();
  EXPECT_EQ(ok.config->imap[0].auth, ImapAuth::XOAuth2);
  EXPECT_EQ(ok.config->imap[0].token_command, "/bin/echo-token");
  EXPECT_NE(describe(*ok.config).find("printed by token_command"), std::string::npos);
  auto none = errors_of(head + "}\n");
  ASSERT_EQ(none.size(), 1u);
  EXPECT_NE(none[0].find("exactly one of 'token_file' and 'token_command'"), std::string::npos);
  auto mixed = errors_of("messenger: {mode: dry-run}\nimap:\n  - {name: o, host: h, username: u, token_file: /t, "
                         "password_env: HOME}\n");
  ASSERT_EQ(mixed.size(), 1u);
  EXPECT_NE(mixed[0].find("are for auth: xoauth2"), std::string::npos);
  auto bad = errors_of("messenger: {mode: dry-run}\nimap:\n  - {name: o, host: h, username: u, auth: cram, "
                       "password_env: HOME}\n");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].find("auto, login, plain or xoauth2"), std::string::npos);
}

TEST(Config, SizesAndDurations) {
  EXPECT_EQ(parse_size("25MB"), 25u * 1024 * 1024);
  EXPECT_EQ(parse_size("512 kb"), 512u * 1024);
  EXPECT_EQ(parse_size("1GB"), 1024ull * 1024 * 1024);
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_FALSE(parse_size("MB"));
  EXPECT_FALSE(parse_size("-5MB"));
  EXPECT_FALSE(parse_size("5 parsecs"));
  EXPECT_EQ(parse_duration("60s"), std::chrono::seconds(60));
  EXPECT_EQ(parse_duration("5m"), std::chrono::seconds(300));
  EXPECT_EQ(parse_duration("1h"), std::chrono::seconds(3600));
  EXPECT_EQ(parse_duration("2d"), std::chrono::seconds(172800));
  EXPECT_EQ(parse_duration("1500ms"), std::chrono::seconds(2));
  EXPECT_EQ(parse_duration("90"), std::chrono::seconds(90));
  EXPECT_FALSE(parse_duration("soon"));
}

TEST(Config, TicketDefaultsBecomeJson) {
  auto r = load_config_text(std::string(kMinimal) + "tickets:\n  defaults: {priority: 2, source: email, \"queue\": '7'}\n", "t.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->ticket_defaults["priority"], 2);
  EXPECT_EQ(r.config->ticket_defaults["source"], "email");
  auto bad = errors_of(std::string(kMinimal) + "tickets:\n  defaults: {title: x}\n");
  ASSERT_EQ(bad.size(), 1u);
}

TEST(Config, ImapOversizedPolicyAndLimit) {
  setenv("MAILGATE_TEST_IMAP_PASSWORD", "imap-pass-value", 1);
  const std::string head =
      "messenger: {mode: dry-run}\nimap:\n  - {name: o, host: h, username: u, password_env: MAILGATE_TEST_IMAP_PASSWORD";
  auto defaults = load_config_text(head + "}\n", "t.yaml");
  ASSERT_TRUE(defaults.config);
  EXPECT_EQ(defaults.config->imap[0].max_message_size, 64u * 1024 * 1024);
  EXPECT_EQ(defaults.config->imap[0].oversized_folder, "");  // keep
  auto moved = load_config_text(head + ", max_message_size: 10MB, oversized: move:Too Big}\n", "t.yaml");
  ASSERT_TRUE(moved.config) << moved.errors[0].to_string();
  EXPECT_EQ(moved.config->imap[0].max_message_size, 10u * 1024 * 1024);
  EXPECT_EQ(moved.config->imap[0].oversized_folder, "Too Big");
  EXPECT_NE(describe(*moved.config).find("oversized: move:Too Big"), std::string::npos);
  auto bad = errors_of(head + ", max_message_size: 1GB, oversized: delete}\n");
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_NE(bad[0].find("max_message_size must be between"), std::string::npos);
  EXPECT_NE(bad[1].find("oversized must be keep or move:FOLDER"), std::string::npos);
}

TEST(Config, LogFormat) {
  EXPECT_EQ(load_config_text(kMinimal, "t.yaml").config->log.format, LogFormat::Text);
  auto json = load_config_text(std::string(kMinimal) + "log:\n  format: json\n", "t.yaml");
  ASSERT_TRUE(json.config);
  EXPECT_EQ(json.config->log.format, LogFormat::Json);
  auto unknown = errors_of(std::string(kMinimal) + "log:\n  level: debug\n");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_NE(unknown[0].find("unknown key 'level' in log"), std::string::npos);
  auto wrong = errors_of(std::string(kMinimal) + "log:\n  format: xml\n");
  ASSERT_EQ(wrong.size(), 1u);
  EXPECT_NE(wrong[0].find("log.format must be text or json"), std::string::npos);
}

// issue 15 / issue 13: the mail budgets' defaults and bounds.
TEST(Config, MailBudgetsDefaultAndBounds) {
  auto r = load_config_text(kMinimal, "t.yaml");
  ASSERT_TRUE(r.config);
  // 7 MB: the API's 10 MB request limit after base64 (4/3), with room for JSON.
  EXPECT_EQ(r.config->mail.max_attachment_size, 7ull * 1024 * 1024);
  EXPECT_EQ(r.config->mail.max_media, 100);
  EXPECT_EQ(r.config->mail.max_processing_time, std::chrono::seconds(30));

  r = load_config_text(std::string(kMinimal) + "mail:\n  max_media: 5\n  max_processing_time: 2m\n", "t.yaml");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].to_string());
  EXPECT_EQ(r.config->mail.max_media, 5);
  EXPECT_EQ(r.config->mail.max_processing_time, std::chrono::seconds(120));

  EXPECT_FALSE(errors_of(std::string(kMinimal) + "mail:\n  max_media: 0\n").empty());
  EXPECT_FALSE(errors_of(std::string(kMinimal) + "mail:\n  max_processing_time: 2h\n").empty());
  EXPECT_FALSE(errors_of(std::string(kMinimal) + "mail:\n  max_attachment_size: 70MB\n").empty());
}

TEST(Config, ImapProgressInterval) {
  setenv("MAILGATE_TEST_IMAP_PASSWORD", "imap-pass-value", 1);
  const std::string head =
      "messenger: {mode: dry-run}\nimap:\n  - {name: p, host: h, username: u, password_env: MAILGATE_TEST_IMAP_PASSWORD";
  auto defaults = load_config_text(head + "}\n", "t.yaml");
  ASSERT_TRUE(defaults.config);
  EXPECT_EQ(defaults.config->imap[0].progress_interval, std::chrono::seconds(10));
  auto set = load_config_text(head + ", progress_interval: 1m}\n", "t.yaml");
  ASSERT_TRUE(set.config) << set.errors[0].to_string();
  EXPECT_EQ(set.config->imap[0].progress_interval, std::chrono::seconds(60));
  EXPECT_NE(describe(*set.config).find("progress_interval: 60s"), std::string::npos);
  auto bad = errors_of(head + ", progress_interval: often}\n");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].find("'progress_interval' must be a duration"), std::string::npos);
}

// ---- routes, senders, policy (design.md "A support mailbox") ---------------

TEST(ConfigRouting, DefaultsAreDesignsDefaults) {
  auto r = load_config_text(kMinimal, "t.yaml");
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_TRUE(c.routes.empty());
  EXPECT_TRUE(c.senders.trusted_lists.empty());
  EXPECT_EQ(c.senders.authserv_id, "");
  EXPECT_EQ(c.senders.unauthenticated, Unauthenticated::Accept);
  EXPECT_EQ(c.policy.auto_reply, MailAction::Ignore);
  EXPECT_EQ(c.policy.bounce, MailAction::Ignore);
  EXPECT_EQ(c.policy.bulk, MailAction::Hold);
  EXPECT_EQ(c.policy.own_address, MailAction::Ignore);
  EXPECT_EQ(c.policy.flood.max, 20);
  EXPECT_EQ(c.policy.flood.per, std::chrono::hours(1));
  EXPECT_EQ(c.policy.flood.action, MailAction::Hold);
  EXPECT_EQ(c.policy.ignored_retention, std::chrono::hours(24 * 30));
}

TEST(ConfigRouting, RoutesAreReadInOrderWithPositionsAndTypedTicketFields) {
  auto r = load_config_text(std::string(kMinimal) + R"(routes:
  - name: billing
    match:
      recipient: ["Billing@Example.com", "@billing.example.com"]
      from: "@BigCustomer.example"
      subject: "(?i)invoice"
      header: {X-Priority: "^1", X-Team: "ops"}
      source: [smtp, deliver]
    action: hold
    ticket: {queue: 3, priority: "2"}
  - {name: rest, action: ignore}
senders: {trusted_lists: ["<Support.Example.com>"], authserv_id: MX.example.com, unauthenticated: hold}
policy: {bulk: ticket, auto_reply: hold, flood: {max: 5, per: 10m, action: ignore}, ignored_retention: 2d}
)", "t.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  ASSERT_EQ(c.routes.size(), 2u);
  const Route& b = c.routes[0];
  EXPECT_EQ(b.name, "billing");
  EXPECT_EQ(b.match.recipient, (std::vector<std::string>{"billing@example.com", "@billing.example.com"}));
  EXPECT_EQ(b.match.from, (std::vector<std::string>{"@bigcustomer.example"}));
  EXPECT_EQ(b.match.subject, "(?i)invoice");
  EXPECT_EQ(b.match.subject_at.line, 12);
  EXPECT_EQ(b.match.subject_at.column, 16);
  ASSERT_EQ(b.match.header.size(), 2u);
  EXPECT_EQ(b.match.header[1], (std::pair<std::string, std::string>{"X-Team", "ops"}));
  ASSERT_EQ(b.match.header_at.size(), 2u);
  EXPECT_EQ(b.match.header_at[0].line, 13);
  EXPECT_EQ(b.match.source, (std::vector<std::string>{"smtp", "deliver"}));
  EXPECT_EQ(b.action, MailAction::Hold);
  EXPECT_TRUE(b.ticket["queue"].is_number_integer());
  EXPECT_TRUE(b.ticket["priority"].is_string());
  EXPECT_EQ(c.routes[1].action, MailAction::Ignore);
  EXPECT_EQ(c.senders.trusted_lists, (std::vector<std::string>{"support.example.com"}));
  EXPECT_EQ(c.senders.authserv_id, "mx.example.com");
  EXPECT_EQ(c.senders.unauthenticated, Unauthenticated::Hold);
  EXPECT_EQ(c.policy.bulk, MailAction::Ticket);
  EXPECT_EQ(c.policy.auto_reply, MailAction::Hold);
  EXPECT_EQ(c.policy.flood.max, 5);
  EXPECT_EQ(c.policy.flood.per, std::chrono::minutes(10));
  EXPECT_EQ(c.policy.flood.action, MailAction::Ignore);
  EXPECT_EQ(c.policy.ignored_retention, std::chrono::hours(48));
  std::string shown = describe(c);
  EXPECT_NE(shown.find("name: billing"), std::string::npos) << shown;
  EXPECT_NE(shown.find("(?i)invoice"), std::string::npos) << shown;
  EXPECT_NE(shown.find("bulk: ticket"), std::string::npos) << shown;
  EXPECT_NE(shown.find("trusted_lists: [support.example.com]"), std::string::npos) << shown;
}

TEST(ConfigRouting, MistakesAreReportedWithPositions) {
  auto errors = errors_of(std::string(kMinimal) + R"(routes:
  - name: a
    match: {recipient: [nobody], sorce: [smtp], source: [imap:nosuch]}
    action: drop
    ticket: {title: "x"}
  - name: a
senders: {unauthenticated: hold}
policy: {bulk: maybe, flood: {max: -1}}
)");
  auto has = [&](const std::string& prefix) {
    return std::any_of(errors.begin(), errors.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has("t.yaml:9:24: route 'a' match.recipient entry 'nobody' must be user@domain or @domain"));
  EXPECT_TRUE(has("t.yaml:9:34: unknown key 'sorce'"));
  EXPECT_TRUE(has("t.yaml:9:57: route 'a' match.source 'imap:nosuch'"));
  EXPECT_TRUE(has("t.yaml:10:13: route 'a'.action must be ticket, ignore or hold"));
  EXPECT_TRUE(has("t.yaml:11:13: route 'a'.ticket cannot set 'title'"));
  EXPECT_TRUE(has("t.yaml:12:11: duplicate route name 'a'"));
  EXPECT_TRUE(has("t.yaml:13:28: senders.unauthenticated: hold needs senders.authserv_id"));
  EXPECT_TRUE(has("t.yaml:14:16: policy.bulk must be ticket, ignore or hold"));
  EXPECT_TRUE(has("t.yaml:14:36: 'max' must be between 0 and"));
  for (const auto& e : errors) SCOPED_TRACE(e);
  EXPECT_EQ(errors.size(), 9u);
}
