// mailgate's configuration: the YAML file of design.md as typed structs.
// Loading reports every problem (unknown keys, wrong types, missing keys,
// bad values) as FILE:LINE:COL: message, not just the first one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/config/choices.hpp"

namespace mailgate::config {

// A secret read from a file (systemd credentials) or an environment
// variable. Its value never leaves this struct in logs or output.
struct Secret {
  std::string value;
  std::string source;  // "file /run/credentials/…" or "env NAME"; "" when unset
  bool is_set() const { return !source.empty(); }
};

struct MessengerConfig {
  std::string api_key;
  Secret secret;
  std::string auth_url = "https://api.inbenta.io/v1";
  std::string ca_file;  // extra trust anchor; "" = system store only
  bool allow_plain_http = false;
  MessengerMode mode = MessengerMode::Live;
  int max_in_flight = 8;
  // Send the spool id as external_id on create and look tickets up by it
  // after a crash; off: look up by IQL (creator and title). Deployment-specific.
  bool external_id = false;
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};

struct SmtpConfig {
  std::vector<ListenAddress> listen;
  SmtpProtocol protocol = SmtpProtocol::Smtp;
  std::string hostname;
  std::uint64_t max_message_size = 25ull * 1024 * 1024;
  std::vector<std::string> accept;  // "user@domain" or "@domain", lower-case
  std::optional<TlsFiles> tls;
  static constexpr std::chrono::seconds kDefaultTimeout{300};
  static constexpr int kDataTimeoutFactor = 2;
  std::chrono::seconds timeout = kDefaultTimeout;  // waiting for a command
  // Waiting for DATA lines and BDAT chunks: a relay streaming a large
  // message from a slow queue pauses longer between lines than between
  // commands (RFC 5321 §4.5.3.2.6: 10 minutes against 5). Not given in the
  // file: kDataTimeoutFactor × timeout.
  std::chrono::seconds data_timeout = kDefaultTimeout * kDataTimeoutFactor;
  int max_connections = 200;
  int max_connections_per_ip = 20;
};

struct ImapMailboxConfig {
  std::string name;
  std::string host;
  static constexpr std::uint16_t kTlsPort = 993;    // imaps; the default with security: tls
  static constexpr std::uint16_t kPlainPort = 143;  // the default with starttls or none
  static constexpr std::uint64_t kMaxMessageSizeLimit = 256ull * 1024 * 1024;
  std::uint16_t port = kTlsPort;
  ImapSecurity security = ImapSecurity::Tls;
  std::string ca_file;  // extra trust anchor for a private CA
  std::string username;
  ImapAuth auth = ImapAuth::Auto;  // auto: PLAIN when offered, else LOGIN
  Secret password;                 // not for xoauth2
  std::string token_file;          // xoauth2: the access token, re-read at every login
  std::string token_command;       // xoauth2: or a command printing it
  std::string folder = "INBOX";
  AfterImport after_import = AfterImport::Seen;
  std::string move_to;  // folder for AfterImport::Move
  bool idle = true;
  std::chrono::seconds poll_interval{60};
  std::uint64_t max_message_size = 64ull * 1024 * 1024;  // larger: skipped, recorded, the mailbox moves on
  std::string oversized_folder;                          // oversized: move:FOLDER ("" = keep on the server)
  std::chrono::seconds progress_interval{10};            // imap.progress lines while a backlog is imported
};

// How mail becomes a ticket (design.md "Mail → ticket rules").
struct MailRules {
  SenderField sender = SenderField::From;
  // The API's 10 MB request limit after base64: no setting may go above it.
  static constexpr std::uint64_t kMaxAttachmentSizeLimit = 7ull * 1024 * 1024;
  std::uint64_t max_attachment_size = kMaxAttachmentSizeLimit;
  std::string loop_id = "mailgate";
  int max_media = 100;                                 // uploads per mail; the rest named as skipped
  std::chrono::seconds max_processing_time{30};        // drafting one mail; over it: failed/
};

// The spool and the processor (design.md "Spool").
struct QueueConfig {
  std::uint64_t max_size = 0;                        // queued bytes; 0 = no limit (then 452)
  std::uint64_t min_free_space = 64ull * 1024 * 1024;  // refuse mail below this much free disk
  std::chrono::seconds done_retention{7 * 24 * 3600};  // how long done/ keeps raw mail
  int concurrency = 4;                               // messages processed at once
  std::chrono::seconds give_up_after{5 * 24 * 3600};  // temporary failures for longer → failed/
};

struct MetricsConfig {
  ListenAddress listen;
};

struct LogConfig {
  LogFormat format = LogFormat::Text;  // json: one object per line, for log shippers
};

// ---- A support mailbox (design.md "A support mailbox, not a ticket printer") ----

// design.md "Threading".
struct ThreadingConfig {
  bool enabled = true;
  std::vector<std::string> subject_patterns = {R"(\[#(\d+)\])"};  // RE2; first capture group = ticket id
  ThreadAllow allow = ThreadAllow::Creator;
  ClosedTicket closed = ClosedTicket::Reopen;
  std::vector<std::string> closed_statuses = {"closed", "solved"};
  std::string reopen_status = "open";
  bool strip_quoted = true;
  std::chrono::seconds remember{365 * 24 * 3600};  // Message-ID → ticket index rows
};

// Where a value came from in the file, for errors found after loading
// (a route's regex is compiled by the routing library).
struct Position {
  int line = 0;  // 1-based, 0 unknown
  int column = 0;
};

// design.md "Routing": every key given must match; a list matches any entry.
struct RouteMatch {
  std::vector<std::string> recipient;  // "user@domain" or "@domain", lower-case
  std::vector<std::string> from;       // the same forms, against the ticket's user
  std::optional<std::string> subject;  // RE2 pattern
  std::vector<std::pair<std::string, std::string>> header;  // name → RE2 pattern, in file order
  std::vector<std::string> source;     // smtp, lmtp, deliver, imap:NAME
  Position subject_at;
  std::vector<Position> header_at;     // one per header entry
};

struct Route {
  std::string name;
  RouteMatch match;
  MailAction action = MailAction::Ticket;
  nlohmann::json ticket = nlohmann::json::object();  // merged over tickets.defaults, YAML types kept
  Position at;
};

// design.md "Senders and policy".
struct SendersConfig {
  std::vector<std::string> trusted_lists;  // List-Id values (the part in <>, lower-case)
  std::string authserv_id;                 // "" = no Authentication-Results is trusted
  Unauthenticated unauthenticated = Unauthenticated::Accept;
};

struct FloodPolicy {
  int max = 20;                             // tickets per sender per window; 0 = no limit
  std::chrono::seconds per{3600};
  MailAction action = MailAction::Hold;
};

struct PolicyConfig {
  MailAction auto_reply = MailAction::Ignore;
  MailAction bounce = MailAction::Ignore;
  MailAction bulk = MailAction::Hold;
  MailAction own_address = MailAction::Ignore;
  FloodPolicy flood;
  std::chrono::seconds ignored_retention{30 * 24 * 3600};
};

struct Config {
  std::string file;  // where it was loaded from
  std::string spool_dir = "/var/lib/mailgate";
  MessengerConfig messenger;
  std::optional<SmtpConfig> smtp;
  std::vector<ImapMailboxConfig> imap;
  MailRules mail;
  QueueConfig queue;
  nlohmann::json ticket_defaults = nlohmann::json::object();
  std::optional<MetricsConfig> metrics;
  LogConfig log;
  ThreadingConfig threading;
  std::vector<Route> routes;
  SendersConfig senders;
  PolicyConfig policy;
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error has no position
  int column = 0;  // 1-based
  std::string message;
  std::string to_string() const;  // "FILE:LINE:COL: message"
};

struct LoadResult {
  std::optional<Config> config;      // set only when errors is empty
  std::vector<ConfigError> errors;
};

LoadResult load_config_file(const std::string& path);
// For tests and embedded defaults: `name` is used in error positions.
LoadResult load_config_text(std::string_view yaml, const std::string& name);

// "25MB", "512KB", "1GB", "1024" (bytes); binary units. nullopt if invalid.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "60s", "5m", "1h", "2d", "500ms" (rounded up to 1s), "90" (seconds).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// The effective configuration, defaults filled in, secrets masked: what
// `mailgate check-config` prints.
std::string describe(const Config& config);

}  // namespace mailgate::config
