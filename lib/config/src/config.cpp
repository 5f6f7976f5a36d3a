// YAML → Config with a small schema walker: each mapping names the keys it
// knows; anything else is an error at the key's own line and column.
#include "mailgate/config/config.hpp"
#include "mailgate/text/ascii.hpp"
#include "mailgate/text/file.hpp"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

namespace mailgate::config {
namespace {

using text::ascii_lower;
using text::trim;



// Collects errors while walking the document.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Node& at, const std::string& message) {
    YAML::Mark m = YAML::Mark::null_mark();
    try {
      m = at.Mark();
    } catch (const YAML::Exception&) {
      // a node that is not in the document has no position
    }
    error(m, message);
  }
  void error(const YAML::Mark& m, const std::string& message) {
    errors_.push_back({file_, m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1, message});
  }
  std::vector<ConfigError>& errors() { return errors_; }

  // Checks `node` is a mapping whose keys are all in `known`, and that no
  // key repeats. Returns false (after reporting) if it is not a mapping.
  bool expect_mapping(const YAML::Node& node, const std::string& where, std::initializer_list<const char*> known) {
    if (!node.IsMap()) {
      error(node, where + " must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) error(kv.first, "duplicate key '" + key + "' in " + where);
      if (std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) == known.end()) {
        std::string list;
        for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        error(kv.first, "unknown key '" + key + "' in " + where + " (known: " + list + ")");
      }
    }
    return true;
  }

  // A key whose value is a word of Words<Enum> (choices.hpp); `what` names
  // the key in the error: "imap security must be tls, starttls or none".
  template <Choice Enum>
  void choice(const YAML::Node& map, const char* key, Enum& out, const std::string& what) {
    YAML::Node n = map[key];
    if (!n) return;
    const auto value = n.IsScalar() ? from_string<Enum>(n.Scalar()) : std::nullopt;
    if (!value) {
      error(n, what + " must be " + word_list<Enum>() + (n.IsScalar() ? ", not '" + n.Scalar() + "'" : ""));
      return;
    }
    out = *value;
  }

  bool string(const YAML::Node& map, const char* key, std::string& out, bool required, const std::string& where) {
    YAML::Node n = map[key];
    if (!n) {
      if (required) error(map, "missing required key '" + std::string(key) + "' in " + where);
      return false;
    }
    if (!n.IsScalar()) {
      error(n, "'" + std::string(key) + "' must be a string");
      return false;
    }
    out = n.Scalar();
    return true;
  }

  void boolean(const YAML::Node& map, const char* key, bool& out) {
    YAML::Node n = map[key];
    if (!n) return;
    try {
      if (!n.IsScalar()) throw YAML::Exception(n.Mark(), "");
      out = n.as<bool>();
    } catch (const YAML::Exception&) {
      error(n, "'" + std::string(key) + "' must be true or false");
    }
  }

  void integer(const YAML::Node& map, const char* key, int& out, int min, int max) {
    YAML::Node n = map[key];
    if (!n) return;
    try {
      if (!n.IsScalar()) throw YAML::Exception(n.Mark(), "");
      int v = n.as<int>();
      if (v < min || v > max) {
        error(n, "'" + std::string(key) + "' must be between " + std::to_string(min) + " and " + std::to_string(max));
        return;
      }
      out = v;
    } catch (const YAML::Exception&) {
      error(n, "'" + std::string(key) + "' must be a whole number");
    }
  }

  void size(const YAML::Node& map, const char* key, std::uint64_t& out) {
    YAML::Node n = map[key];
    if (!n) return;
    auto v = n.IsScalar() ? parse_size(n.Scalar()) : std::nullopt;
    if (!v) {
      error(n, "'" + std::string(key) + "' must be a size like 25MB, 512KB or a number of bytes");
      return;
    }
    out = *v;
  }

  void duration(const YAML::Node& map, const char* key, std::chrono::seconds& out) {
    YAML::Node n = map[key];
    if (!n) return;
    auto v = n.IsScalar() ? parse_duration(n.Scalar()) : std::nullopt;
    if (!v) {
      error(n, "'" + std::string(key) + "' must be a duration like 60s, 5m or 1h");
      return;
    }
    out = *v;
  }

  std::vector<std::string> string_list(const YAML::Node& map, const char* key) {
    std::vector<std::string> out;
    YAML::Node n = map[key];
    if (!n) return out;
    if (n.IsScalar()) return {n.Scalar()};  // a single value is a list of one
    if (!n.IsSequence()) {
      error(n, "'" + std::string(key) + "' must be a list of strings");
      return out;
    }
    for (const auto& item : n) {
      if (!item.IsScalar()) error(item, "each entry of '" + std::string(key) + "' must be a string");
      else out.push_back(item.Scalar());
    }
    return out;
  }

  // secret_file / secret_env style pair.
  void secret(const YAML::Node& map, const char* file_key, const char* env_key, Secret& out) {
    YAML::Node f = map[file_key], e = map[env_key];
    if (f && e) error(e, "give either '" + std::string(file_key) + "' or '" + std::string(env_key) + "', not both");
    if (f) {
      if (!f.IsScalar()) {
        error(f, "'" + std::string(file_key) + "' must be a path");
        return;
      }
      out.source = "file " + f.Scalar();
      const auto bytes = text::read_file(f.Scalar());
      if (!bytes) {
        error(f, "cannot read '" + f.Scalar() + "' (" + file_key + ")");
        return;
      }
      out.value = std::string(trim(*bytes));  // files usually end with a newline
      if (out.value.empty()) error(f, "'" + f.Scalar() + "' is empty (" + file_key + ")");
    } else if (e) {
      if (!e.IsScalar()) {
        error(e, "'" + std::string(env_key) + "' must be a variable name");
        return;
      }
      out.source = "env " + e.Scalar();
      const char* v = std::getenv(e.Scalar().c_str());
      if (!v || !*v) error(e, "environment variable " + e.Scalar() + " is not set (" + env_key + ")");
      else out.value = v;
    }
  }

  std::optional<ListenAddress> listen_address(const YAML::Node& n) {
    if (!n.IsScalar()) {
      error(n, "a listen address must be a string like 127.0.0.1:2525");
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      error(n, "listen address '" + s + "' must be HOST:PORT");
      return std::nullopt;
    }
    ListenAddress a;
    a.host = s.substr(0, colon);
    if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
    std::string port = s.substr(colon + 1);
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p < 1 || p > 65535) {
      error(n, "listen address '" + s + "' has no valid port (1-65535)");
      return std::nullopt;
    }
    a.port = static_cast<std::uint16_t>(p);
    return a;
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.Scalar()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& item : n) j.push_back(yaml_to_json(item));
      return j;
    }
    case YAML::NodeType::Scalar: {
      // Plain scalars that read as numbers or booleans keep that type;
      // quoted ones ("42") stay strings.
      if (n.Tag() != "!") {
        bool b;
        long long i;
        double d;
        if (YAML::convert<long long>::decode(n, i)) return i;
        if (YAML::convert<double>::decode(n, d)) return d;
        if (YAML::convert<bool>::decode(n, b)) return b;
      }
      return n.Scalar();
    }
    default:
      return nullptr;
  }
}

void read_messenger(Reader& r, const YAML::Node& n, MessengerConfig& m) {
  if (!r.expect_mapping(n, "messenger",
                        {"api_key", "secret_file", "secret_env", "auth_url", "ca_file", "allow_plain_http", "mode",
                         "max_in_flight", "external_id"}))
    return;
  r.choice(n, "mode", m.mode, "messenger.mode");

  const bool live = m.mode == MessengerMode::Live;
  r.string(n, "api_key", m.api_key, live, "messenger");
  r.secret(n, "secret_file", "secret_env", m.secret);
  if (live && !n["secret_file"] && !n["secret_env"])
    r.error(n, "missing 'secret_file' or 'secret_env' in messenger (required in live mode)");
  r.string(n, "auth_url", m.auth_url, false, "messenger");
  r.string(n, "ca_file", m.ca_file, false, "messenger");
  r.boolean(n, "allow_plain_http", m.allow_plain_http);
  r.integer(n, "max_in_flight", m.max_in_flight, 1, 256);
  r.boolean(n, "external_id", m.external_id);
  if (m.auth_url.rfind("https://", 0) != 0) {
    if (m.auth_url.rfind("http://", 0) != 0)
      r.error(n["auth_url"] ? n["auth_url"] : n, "messenger.auth_url must start with https://");
    else if (!m.allow_plain_http)
      r.error(n["auth_url"], "messenger.auth_url is plain http://; set allow_plain_http: true (tests only)");
  }
  if (!m.ca_file.empty() && !std::ifstream(m.ca_file)) r.error(n["ca_file"], "cannot read ca_file '" + m.ca_file + "'");
}

void read_smtp(Reader& r, const YAML::Node& n, SmtpConfig& s) {
  if (!r.expect_mapping(n, "smtp", {"listen", "protocol", "hostname", "max_message_size", "accept", "tls", "timeout",
                                    "data_timeout", "max_connections", "max_connections_per_ip"}))
    return;
  r.duration(n, "timeout", s.timeout);
  s.data_timeout = s.timeout * SmtpConfig::kDataTimeoutFactor;
  r.duration(n, "data_timeout", s.data_timeout);
  r.integer(n, "max_connections", s.max_connections, 1, 100000);
  r.integer(n, "max_connections_per_ip", s.max_connections_per_ip, 1, 100000);
  if (!n["listen"]) r.error(n, "missing required key 'listen' in smtp");
  YAML::Node listen = n["listen"];
  if (listen && listen.IsScalar()) {
    if (auto a = r.listen_address(listen)) s.listen.push_back(*a);
  } else if (listen && listen.IsSequence()) {
    for (const auto& item : listen)
      if (auto a = r.listen_address(item)) s.listen.push_back(*a);
  } else if (listen) {
    r.error(listen, "smtp.listen must be a list of HOST:PORT");
  }
  r.choice(n, "protocol", s.protocol, "smtp.protocol");
  r.string(n, "hostname", s.hostname, false, "smtp");
  r.size(n, "max_message_size", s.max_message_size);
  for (auto& a : r.string_list(n, "accept")) {
    std::string v = ascii_lower(trim(a));
    if (v.find('@') == std::string::npos || v.back() == '@')
      r.error(n["accept"], "smtp.accept entry '" + a + "' must be user@domain or @domain");
    else
      s.accept.push_back(v);
  }
  if (!n["accept"] || s.accept.empty())
    r.error(n["accept"] ? n["accept"] : n, "smtp.accept must list at least one address or @domain (mailgate is never an open relay)");
  if (YAML::Node tls = n["tls"]) {
    if (r.expect_mapping(tls, "smtp.tls", {"cert_file", "key_file"})) {
      TlsFiles t;
      r.string(tls, "cert_file", t.cert_file, true, "smtp.tls");
      r.string(tls, "key_file", t.key_file, true, "smtp.tls");
      if (!t.cert_file.empty() && !std::ifstream(t.cert_file)) r.error(tls["cert_file"], "cannot read cert_file '" + t.cert_file + "'");
      if (!t.key_file.empty() && !std::ifstream(t.key_file)) r.error(tls["key_file"], "cannot read key_file '" + t.key_file + "'");
      s.tls = t;
    }
  }
  if (s.hostname.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0) s.hostname = buf;
  }
}

// "seen", "delete" or "move:FOLDER": the only choice that carries a value.
void read_after_import(Reader& r, const YAML::Node& b, ImapMailboxConfig& m) {
  std::string after(to_string(m.after_import));
  r.string(b, "after_import", after, false, "imap mailbox");
  constexpr std::string_view kMove = "move:";
  const auto value = after.starts_with(kMove) ? std::optional(AfterImport::Move) : from_string<AfterImport>(after);
  if (!value || (*value == AfterImport::Move && after.size() <= kMove.size())) {
    r.error(b["after_import"], "after_import must be seen, delete or move:FOLDER");
    return;
  }
  m.after_import = *value;
  if (*value == AfterImport::Move) m.move_to = after.substr(kMove.size());
}

void read_imap(Reader& r, const YAML::Node& n, std::vector<ImapMailboxConfig>& boxes) {
  if (!n.IsSequence()) {
    r.error(n, "imap must be a list of mailboxes");
    return;
  }
  std::set<std::string> names;
  for (const auto& b : n) {
    if (!r.expect_mapping(b, "imap mailbox",
                          {"name", "host", "port", "security", "ca_file", "username", "auth", "password_file",
                           "password_env", "token_file", "token_command", "folder", "after_import", "idle",
                           "poll_interval", "max_message_size", "oversized", "progress_interval"}))
      continue;
    ImapMailboxConfig m;
    r.string(b, "name", m.name, true, "imap mailbox");
    if (!m.name.empty() && !names.insert(m.name).second) r.error(b["name"], "duplicate imap mailbox name '" + m.name + "'");
    r.string(b, "host", m.host, true, "imap mailbox");
    r.choice(b, "security", m.security, "imap security");
    int port = m.security == ImapSecurity::Tls ? ImapMailboxConfig::kTlsPort : ImapMailboxConfig::kPlainPort;
    r.integer(b, "port", port, 1, 65535);
    m.port = static_cast<std::uint16_t>(port);
    r.string(b, "username", m.username, true, "imap mailbox");
    r.string(b, "ca_file", m.ca_file, false, "imap mailbox");
    if (!m.ca_file.empty() && !std::ifstream(m.ca_file)) r.error(b["ca_file"], "cannot read ca_file '" + m.ca_file + "'");
    r.choice(b, "auth", m.auth, "imap auth");
    if (m.auth == ImapAuth::XOAuth2) {
      r.string(b, "token_file", m.token_file, false, "imap mailbox");
      r.string(b, "token_command", m.token_command, false, "imap mailbox");
      if (m.token_file.empty() == m.token_command.empty())
        r.error(b, "imap auth xoauth2 needs exactly one of 'token_file' and 'token_command'");
    } else {
      if (b["token_file"] || b["token_command"]) r.error(b, "'token_file' and 'token_command' are for auth: xoauth2");
      r.secret(b, "password_file", "password_env", m.password);
      if (!b["password_file"] && !b["password_env"]) r.error(b, "missing 'password_file' or 'password_env' in imap mailbox");
    }
    r.string(b, "folder", m.folder, false, "imap mailbox");
    read_after_import(r, b, m);
    r.boolean(b, "idle", m.idle);
    r.duration(b, "poll_interval", m.poll_interval);
    r.size(b, "max_message_size", m.max_message_size);
    if (m.max_message_size == 0 || m.max_message_size > ImapMailboxConfig::kMaxMessageSizeLimit)
      r.error(b["max_message_size"], "imap max_message_size must be between 1 byte and 256MB");
    std::string oversized = "keep";
    r.string(b, "oversized", oversized, false, "imap mailbox");
    if (oversized.rfind("move:", 0) == 0 && oversized.size() > 5) m.oversized_folder = oversized.substr(5);
    else if (oversized != "keep") r.error(b["oversized"], "oversized must be keep or move:FOLDER");
    r.duration(b, "progress_interval", m.progress_interval);
    boxes.push_back(std::move(m));
  }
}

void read_mail(Reader& r, const YAML::Node& n, MailRules& m) {
  if (!r.expect_mapping(n, "mail", {"sender", "max_attachment_size", "loop_id", "max_media", "max_processing_time"}))
    return;
  r.choice(n, "sender", m.sender, "mail.sender");
  r.size(n, "max_attachment_size", m.max_attachment_size);
  if (m.max_attachment_size > MailRules::kMaxAttachmentSizeLimit)
    r.error(n["max_attachment_size"], "mail.max_attachment_size cannot exceed 7MB (the API's 10 MB request limit after base64)");
  r.string(n, "loop_id", m.loop_id, false, "mail");
  r.integer(n, "max_media", m.max_media, 1, 10000);
  r.duration(n, "max_processing_time", m.max_processing_time);
  if (m.max_processing_time < std::chrono::seconds(1) || m.max_processing_time > std::chrono::seconds(3600))
    r.error(n["max_processing_time"], "mail.max_processing_time must be between 1s and 1h");
}

void read_queue(Reader& r, const YAML::Node& n, QueueConfig& q) {
  if (!r.expect_mapping(n, "queue", {"max_size", "min_free_space", "done_retention", "concurrency", "give_up_after"}))
    return;
  r.size(n, "max_size", q.max_size);
  r.size(n, "min_free_space", q.min_free_space);
  r.duration(n, "done_retention", q.done_retention);
  r.integer(n, "concurrency", q.concurrency, 1, 256);
  r.duration(n, "give_up_after", q.give_up_after);
}

// ---- routes, senders and policy (design.md "A support mailbox") ----------

constexpr const char* kReservedTicketFields[] = {"title", "message", "creator", "attachments", "external_id"};

Position position_of(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  return {m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1};
}

// "user@domain" or "@domain", lower-case, as in smtp.accept.
std::vector<std::string> address_patterns(Reader& r, const YAML::Node& map, const char* key, const std::string& where) {
  std::vector<std::string> out;
  for (auto& a : r.string_list(map, key)) {
    std::string v = ascii_lower(trim(a));
    if (v.find('@') == std::string::npos || v.back() == '@')
      r.error(map[key], where + "." + key + " entry '" + a + "' must be user@domain or @domain");
    else
      out.push_back(v);
  }
  return out;
}

void read_route_match(Reader& r, const YAML::Node& n, RouteMatch& m, const std::string& where,
                      const std::vector<ImapMailboxConfig>& imap) {
  if (!r.expect_mapping(n, where, {"recipient", "from", "subject", "header", "source"})) return;
  m.recipient = address_patterns(r, n, "recipient", where);
  m.from = address_patterns(r, n, "from", where);
  if (YAML::Node s = n["subject"]) {
    if (!s.IsScalar()) r.error(s, where + ".subject must be a regular expression (a string)");
    else {
      m.subject = s.Scalar();
      m.subject_at = position_of(s);
    }
  }
  if (YAML::Node h = n["header"]) {
    if (!h.IsMap()) {
      r.error(h, where + ".header must map header names to regular expressions");
      return;
    }
    for (const auto& kv : h) {
      if (!kv.second.IsScalar()) {
        r.error(kv.second, where + ".header." + kv.first.Scalar() + " must be a regular expression (a string)");
        continue;
      }
      m.header.emplace_back(kv.first.Scalar(), kv.second.Scalar());
      m.header_at.push_back(position_of(kv.second));
    }
  }
  for (auto& source : r.string_list(n, "source")) {
    bool known = source == "smtp" || source == "lmtp" || source == "deliver";
    if (source.rfind("imap:", 0) == 0)
      known = std::any_of(imap.begin(), imap.end(), [&](const auto& box) { return "imap:" + box.name == source; });
    if (!known) r.error(n["source"], where + ".source '" + source + "' must be smtp, lmtp, deliver or imap:NAME of a configured mailbox");
    m.source.push_back(source);
  }
}

void read_routes(Reader& r, const YAML::Node& n, std::vector<Route>& routes, const std::vector<ImapMailboxConfig>& imap) {
  if (!n.IsSequence()) {
    r.error(n, "routes must be a list of routes");
    return;
  }
  std::set<std::string> names;
  for (const auto& item : n) {
    if (!r.expect_mapping(item, "a route", {"name", "match", "action", "ticket"})) continue;
    Route route;
    route.at = position_of(item);
    r.string(item, "name", route.name, true, "a route");
    if (!route.name.empty() && !names.insert(route.name).second) r.error(item["name"], "duplicate route name '" + route.name + "'");
    const std::string where = "route '" + route.name + "'";
    if (YAML::Node m = item["match"]) read_route_match(r, m, route.match, where + " match", imap);
    r.choice(item, "action", route.action, where + ".action");
    if (YAML::Node t = item["ticket"]) {
      if (!t.IsMap()) r.error(t, where + ".ticket must be a mapping of ticket fields");
      else route.ticket = yaml_to_json(t);
      for (const char* reserved : kReservedTicketFields)
        if (route.ticket.contains(reserved))
          r.error(t, where + ".ticket cannot set '" + reserved + "' (mailgate fills it from the mail)");
    }
    routes.push_back(std::move(route));
  }
}

void read_senders(Reader& r, const YAML::Node& n, SendersConfig& s) {
  if (!r.expect_mapping(n, "senders", {"trusted_lists", "authserv_id", "unauthenticated"})) return;
  for (auto& list : r.string_list(n, "trusted_lists")) {
    std::string id = ascii_lower(trim(list));
    if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
    if (id.empty()) r.error(n["trusted_lists"], "senders.trusted_lists entries must be List-Id values like support.example.com");
    else s.trusted_lists.push_back(id);
  }
  r.string(n, "authserv_id", s.authserv_id, false, "senders");
  s.authserv_id = ascii_lower(trim(s.authserv_id));
  r.choice(n, "unauthenticated", s.unauthenticated, "senders.unauthenticated");
  if (s.unauthenticated == Unauthenticated::Hold && s.authserv_id.empty())
    r.error(n["unauthenticated"], "senders.unauthenticated: hold needs senders.authserv_id (without it no Authentication-Results header is trusted)");
}

void read_policy(Reader& r, const YAML::Node& n, PolicyConfig& p) {
  if (!r.expect_mapping(n, "policy", {"auto_reply", "bounce", "bulk", "own_address", "flood", "ignored_retention"})) return;
  r.choice(n, "auto_reply", p.auto_reply, "policy.auto_reply");
  r.choice(n, "bounce", p.bounce, "policy.bounce");
  r.choice(n, "bulk", p.bulk, "policy.bulk");
  r.choice(n, "own_address", p.own_address, "policy.own_address");
  r.duration(n, "ignored_retention", p.ignored_retention);
  YAML::Node f = n["flood"];
  if (!f || !r.expect_mapping(f, "policy.flood", {"max", "per", "action"})) return;
  r.integer(f, "max", p.flood.max, 0, 1000000);
  r.duration(f, "per", p.flood.per);
  if (p.flood.per.count() < 1) r.error(f["per"], "policy.flood.per must be at least 1s");
  r.choice(f, "action", p.flood.action, "policy.flood.action");
}

// design.md "Threading". Subject patterns are compiled here once to refuse
// what cannot work (RE2 syntax, no capture group for the ticket id); the
// pipeline compiles them again for use.
void read_threading(Reader& r, const YAML::Node& n, ThreadingConfig& t) {
  if (!r.expect_mapping(n, "threading",
                        {"enabled", "subject_patterns", "allow", "closed", "closed_statuses", "reopen_status",
                         "strip_quoted", "remember"}))
    return;
  r.boolean(n, "enabled", t.enabled);
  if (n["subject_patterns"]) t.subject_patterns = r.string_list(n, "subject_patterns");
  for (const auto& pattern : t.subject_patterns) {
    RE2 re(pattern, RE2::Quiet);
    if (!re.ok()) r.error(n["subject_patterns"], "threading.subject_patterns: '" + pattern + "': " + re.error());
    else if (re.NumberOfCapturingGroups() < 1)
      r.error(n["subject_patterns"], "threading.subject_patterns: '" + pattern +
                                         "' has no capture group (the first one is the ticket id)");
  }
  r.choice(n, "allow", t.allow, "threading.allow");
  r.choice(n, "closed", t.closed, "threading.closed");
  if (n["closed_statuses"]) t.closed_statuses = r.string_list(n, "closed_statuses");
  r.string(n, "reopen_status", t.reopen_status, false, "threading");
  if (t.reopen_status.empty()) r.error(n["reopen_status"], "threading.reopen_status must not be empty");
  r.boolean(n, "strip_quoted", t.strip_quoted);
  r.duration(n, "remember", t.remember);
  if (t.remember.count() < 1) r.error(n["remember"], "threading.remember must be at least 1s");
}

Config read_document(Reader& r, const YAML::Node& root, const std::string& file) {
  Config c;
  c.file = file;
  if (!root || root.IsNull()) {
    r.error(YAML::Mark(), "the configuration is empty");
    return c;
  }
  if (!r.expect_mapping(root, "the configuration",
                        {"spool_dir", "messenger", "smtp", "imap", "mail", "queue", "tickets", "metrics", "log", "routes",
                         "senders", "policy", "threading"}))
    return c;
  r.string(root, "spool_dir", c.spool_dir, false, "the configuration");
  if (YAML::Node m = root["messenger"]) read_messenger(r, m, c.messenger);
  else r.error(root, "missing required key 'messenger'");
  if (YAML::Node s = root["smtp"]; s && !s.IsNull()) read_smtp(r, s, c.smtp.emplace());
  if (YAML::Node i = root["imap"]; i && !i.IsNull()) read_imap(r, i, c.imap);
  if (YAML::Node m = root["mail"]) read_mail(r, m, c.mail);
  if (YAML::Node q = root["queue"]) read_queue(r, q, c.queue);
  if (YAML::Node t = root["threading"]) read_threading(r, t, c.threading);
  if (YAML::Node t = root["tickets"]) {
    if (r.expect_mapping(t, "tickets", {"defaults"}) && t["defaults"]) {
      if (!t["defaults"].IsMap()) r.error(t["defaults"], "tickets.defaults must be a mapping of ticket fields");
      else c.ticket_defaults = yaml_to_json(t["defaults"]);
      for (const char* reserved : kReservedTicketFields)
        if (c.ticket_defaults.contains(reserved))
          r.error(t["defaults"], std::string("tickets.defaults cannot set '") + reserved + "' (mailgate fills it from the mail)");
    }
  }
  if (YAML::Node m = root["metrics"]) {
    if (r.expect_mapping(m, "metrics", {"listen"})) {
      if (!m["listen"]) r.error(m, "missing required key 'listen' in metrics");
      else if (auto a = r.listen_address(m["listen"])) c.metrics = MetricsConfig{*a};
    }
  }
  if (YAML::Node l = root["log"]) {
    if (r.expect_mapping(l, "log", {"format"})) {
      r.choice(l, "format", c.log.format, "log.format");
    }
  }
  if (YAML::Node n = root["routes"]; n && !n.IsNull()) read_routes(r, n, c.routes, c.imap);
  if (YAML::Node n = root["senders"]) read_senders(r, n, c.senders);
  if (YAML::Node n = root["policy"]) read_policy(r, n, c.policy);
  if (!c.smtp && c.imap.empty())
    r.error(root, "nothing to receive mail with: configure 'smtp', 'imap', or both (mailgate deliver works either way)");
  return c;
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::string s = ascii_lower(trim(text));
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 15) return std::nullopt;
  std::uint64_t n = std::stoull(s.substr(0, i));
  std::string unit = std::string(trim(s.substr(i)));
  std::uint64_t mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024ull * 1024 * 1024;
  else return std::nullopt;
  return n * mult;
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::string s = ascii_lower(trim(text));
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 9) return std::nullopt;
  long long n = std::stoll(s.substr(0, i));
  std::string unit = std::string(trim(s.substr(i)));
  if (unit == "ms") return std::chrono::seconds((n + 999) / 1000);
  if (unit.empty() || unit == "s") return std::chrono::seconds(n);
  if (unit == "m" || unit == "min") return std::chrono::seconds(n * 60);
  if (unit == "h") return std::chrono::seconds(n * 3600);
  if (unit == "d") return std::chrono::seconds(n * 86400);
  return std::nullopt;
}

LoadResult load_config_text(std::string_view yaml, const std::string& name) {
  LoadResult result;
  Reader r(name);
  Config c;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    c = read_document(r, root, name);
  } catch (const YAML::Exception& e) {
    r.error(e.mark, "YAML syntax error: " + e.msg);
  }
  result.errors = std::move(r.errors());
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_config_file(const std::string& path) {
  const auto contents = text::read_file(path);
  if (!contents) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, "cannot open the configuration file"});
    return result;
  }
  return load_config_text(*contents, path);
}

namespace {

// A choice as the file spells it (the emitter takes std::string).
template <Choice Enum>
std::string show(Enum value) {
  return std::string(to_string(value));
}
std::string show_secret(const Secret& s) { return s.is_set() ? "(secret from " + s.source + ")" : "(none)"; }
std::string show_key(const std::string& key) {
  if (key.size() <= 4) return key.empty() ? "(none)" : "****";
  return "****" + key.substr(key.size() - 4);  // enough to tell keys apart
}
std::string show_listen(const ListenAddress& a) {
  return (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
}
std::string show_seconds(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

// routes (in order: the first match wins), senders and policy.
void describe_routing(YAML::Emitter& e, const Config& c) {
  e << YAML::Key << "routes" << YAML::Value << YAML::BeginSeq;
  for (const auto& route : c.routes) {
    const RouteMatch& m = route.match;
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << route.name;
    e << YAML::Key << "match" << YAML::Value << YAML::BeginMap;
    if (!m.recipient.empty()) e << YAML::Key << "recipient" << YAML::Value << YAML::Flow << m.recipient;
    if (!m.from.empty()) e << YAML::Key << "from" << YAML::Value << YAML::Flow << m.from;
    if (m.subject) e << YAML::Key << "subject" << YAML::Value << YAML::SingleQuoted << *m.subject;
    if (!m.header.empty()) {
      e << YAML::Key << "header" << YAML::Value << YAML::Flow << YAML::BeginMap;
      for (const auto& [name, pattern] : m.header) e << YAML::Key << name << YAML::Value << YAML::SingleQuoted << pattern;
      e << YAML::EndMap;
    }
    if (!m.source.empty()) e << YAML::Key << "source" << YAML::Value << YAML::Flow << m.source;
    e << YAML::EndMap;
    e << YAML::Key << "action" << YAML::Value << show(route.action);
    e << YAML::Key << "ticket" << YAML::Value << route.ticket.dump() << YAML::EndMap;
  }
  e << YAML::EndSeq;
  const SendersConfig& s = c.senders;
  e << YAML::Key << "senders" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "trusted_lists" << YAML::Value << YAML::Flow << s.trusted_lists;
  e << YAML::Key << "authserv_id" << YAML::Value << (s.authserv_id.empty() ? "(none: no Authentication-Results trusted)" : s.authserv_id);
  e << YAML::Key << "unauthenticated" << YAML::Value << show(s.unauthenticated);
  e << YAML::EndMap;
  const PolicyConfig& p = c.policy;
  e << YAML::Key << "policy" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "auto_reply" << YAML::Value << show(p.auto_reply);
  e << YAML::Key << "bounce" << YAML::Value << show(p.bounce);
  e << YAML::Key << "bulk" << YAML::Value << show(p.bulk);
  e << YAML::Key << "own_address" << YAML::Value << show(p.own_address);
  e << YAML::Key << "flood" << YAML::Value << YAML::Flow << YAML::BeginMap;
  e << YAML::Key << "max" << YAML::Value << p.flood.max << YAML::Key << "per" << YAML::Value << show_seconds(p.flood.per);
  e << YAML::Key << "action" << YAML::Value << show(p.flood.action) << YAML::EndMap;
  e << YAML::Key << "ignored_retention" << YAML::Value << show_seconds(p.ignored_retention);
  e << YAML::EndMap;
}

std::string show_size(std::uint64_t bytes) {
  if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + "MB";
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + "KB";
  return std::to_string(bytes);
}

void describe_threading(YAML::Emitter& e, const ThreadingConfig& t) {
  e << YAML::Key << "threading" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "enabled" << YAML::Value << t.enabled;
  e << YAML::Key << "subject_patterns" << YAML::Value << YAML::Flow << t.subject_patterns;
  e << YAML::Key << "allow" << YAML::Value << show(t.allow);
  e << YAML::Key << "closed" << YAML::Value << show(t.closed);
  e << YAML::Key << "closed_statuses" << YAML::Value << YAML::Flow << t.closed_statuses;
  e << YAML::Key << "reopen_status" << YAML::Value << t.reopen_status;
  e << YAML::Key << "strip_quoted" << YAML::Value << t.strip_quoted;
  e << YAML::Key << "remember" << YAML::Value << show_seconds(t.remember);
  e << YAML::EndMap;
}

}  // namespace

namespace {

void describe_messenger(YAML::Emitter& e, const MessengerConfig& m) {
  e << YAML::Key << "messenger" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "mode" << YAML::Value << show(m.mode);
  e << YAML::Key << "api_key" << YAML::Value << show_key(m.api_key);
  e << YAML::Key << "secret" << YAML::Value << show_secret(m.secret);
  e << YAML::Key << "auth_url" << YAML::Value << m.auth_url;
  if (!m.ca_file.empty()) e << YAML::Key << "ca_file" << YAML::Value << m.ca_file;
  e << YAML::Key << "allow_plain_http" << YAML::Value << m.allow_plain_http;
  e << YAML::Key << "max_in_flight" << YAML::Value << m.max_in_flight;
  e << YAML::Key << "external_id" << YAML::Value << m.external_id;
  e << YAML::EndMap;
}

void describe_smtp(YAML::Emitter& e, const SmtpConfig& s) {
  e << YAML::Key << "smtp" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "listen" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& l : s.listen) e << show_listen(l);
  e << YAML::EndSeq;
  e << YAML::Key << "protocol" << YAML::Value << show(s.protocol);
  e << YAML::Key << "hostname" << YAML::Value << s.hostname;
  e << YAML::Key << "max_message_size" << YAML::Value << show_size(s.max_message_size);
  e << YAML::Key << "accept" << YAML::Value << YAML::Flow << s.accept;
  e << YAML::Key << "starttls" << YAML::Value << (s.tls ? "on (" + s.tls->cert_file + ")" : std::string("off"));
  e << YAML::Key << "timeout" << YAML::Value << show_seconds(s.timeout);
  e << YAML::Key << "data_timeout" << YAML::Value << show_seconds(s.data_timeout);
  e << YAML::Key << "max_connections" << YAML::Value << s.max_connections;
  e << YAML::Key << "max_connections_per_ip" << YAML::Value << s.max_connections_per_ip;
  e << YAML::EndMap;
}

void describe_mailbox(YAML::Emitter& e, const ImapMailboxConfig& m) {
  e << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << m.name;
  e << YAML::Key << "server" << YAML::Value << m.host + ":" + std::to_string(m.port);
  e << YAML::Key << "security" << YAML::Value << show(m.security);
  e << YAML::Key << "username" << YAML::Value << m.username;
  if (!m.ca_file.empty()) e << YAML::Key << "ca_file" << YAML::Value << m.ca_file;
  e << YAML::Key << "auth" << YAML::Value << show(m.auth);
  if (m.auth == ImapAuth::XOAuth2)
    e << YAML::Key << "token" << YAML::Value
      << (m.token_file.empty() ? "printed by token_command" : "from file " + m.token_file);
  else
    e << YAML::Key << "password" << YAML::Value << show_secret(m.password);
  e << YAML::Key << "folder" << YAML::Value << m.folder;
  e << YAML::Key << "after_import" << YAML::Value
    << show(m.after_import) + (m.after_import == AfterImport::Move ? ":" + m.move_to : "");
  e << YAML::Key << "idle" << YAML::Value << m.idle;
  e << YAML::Key << "poll_interval" << YAML::Value << show_seconds(m.poll_interval);
  e << YAML::Key << "max_message_size" << YAML::Value << show_size(m.max_message_size);
  e << YAML::Key << "oversized" << YAML::Value << (m.oversized_folder.empty() ? "keep" : "move:" + m.oversized_folder);
  e << YAML::Key << "progress_interval" << YAML::Value << show_seconds(m.progress_interval);
  e << YAML::EndMap;
}

void describe_mail_and_queue(YAML::Emitter& e, const MailRules& m, const QueueConfig& q) {
  e << YAML::Key << "mail" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "sender" << YAML::Value << show(m.sender);
  e << YAML::Key << "max_attachment_size" << YAML::Value << show_size(m.max_attachment_size);
  e << YAML::Key << "loop_id" << YAML::Value << m.loop_id;
  e << YAML::Key << "max_media" << YAML::Value << m.max_media;
  e << YAML::Key << "max_processing_time" << YAML::Value << show_seconds(m.max_processing_time);
  e << YAML::EndMap;
  e << YAML::Key << "queue" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "max_size" << YAML::Value << (q.max_size ? show_size(q.max_size) : "unlimited");
  e << YAML::Key << "min_free_space" << YAML::Value << show_size(q.min_free_space);
  e << YAML::Key << "done_retention" << YAML::Value << show_seconds(q.done_retention);
  e << YAML::Key << "concurrency" << YAML::Value << q.concurrency;
  e << YAML::Key << "give_up_after" << YAML::Value << show_seconds(q.give_up_after);
  e << YAML::EndMap;
}

}  // namespace

std::string describe(const Config& c) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "spool_dir" << YAML::Value << c.spool_dir;
  describe_messenger(e, c.messenger);
  if (c.smtp) describe_smtp(e, *c.smtp);
  if (!c.imap.empty()) {
    e << YAML::Key << "imap" << YAML::Value << YAML::BeginSeq;
    for (const auto& m : c.imap) describe_mailbox(e, m);
    e << YAML::EndSeq;
  }
  describe_mail_and_queue(e, c.mail, c.queue);
  describe_threading(e, c.threading);
  e << YAML::Key << "tickets" << YAML::Value << YAML::BeginMap << YAML::Key << "defaults" << YAML::Value
    << c.ticket_defaults.dump() << YAML::EndMap;
  e << YAML::Key << "log" << YAML::Value << YAML::BeginMap << YAML::Key << "format" << YAML::Value
    << show(c.log.format) << YAML::EndMap;
  if (c.metrics) e << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap << YAML::Key << "listen"
                   << YAML::Value << show_listen(c.metrics->listen) << YAML::EndMap;
  describe_routing(e, c);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace mailgate::config
