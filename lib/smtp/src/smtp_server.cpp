// One coroutine per connection: the listener (connection limits, STARTTLS)
// and the session, an explicit state machine driven by a table of verbs.
// Lines and chunks come through net::LineReader, so every wait has a
// deadline and the session runs the same over TCP, TLS or a test's memory.
#include "mailgate/smtp/smtp_server.hpp"

#include <algorithm>
#include <ctime>

#include "mailgate/log/log.hpp"
#include "mailgate/mail/header_block.hpp"
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/spool/async_commit.hpp"
#include "mailgate/text/ascii.hpp"

namespace mailgate::smtp {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string rfc5322_date() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
  return buf;
}

// "FROM:<a@b> SIZE=1" → path "a@b", params {"SIZE": "1"}. nullopt: syntax error.
struct PathArg {
  std::string path;
  std::map<std::string, std::string> params;
};
std::optional<PathArg> parse_path_arg(std::string_view arg, std::string_view keyword) {
  if (arg.size() < keyword.size() || upper(arg.substr(0, keyword.size())) != keyword) return std::nullopt;
  arg.remove_prefix(keyword.size());
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);  // "FROM: <a>" is common
  PathArg out;
  if (!arg.empty() && arg.front() == '<') {
    std::size_t close = arg.find('>');
    if (close == std::string_view::npos) return std::nullopt;
    out.path = std::string(arg.substr(1, close - 1));
    arg.remove_prefix(close + 1);
  } else {  // bare address (lenient, as Postfix with strict_rfc821_envelopes=no)
    std::size_t sp = arg.find(' ');
    out.path = std::string(arg.substr(0, sp));
    arg.remove_prefix(sp == std::string_view::npos ? arg.size() : sp);
  }
  if (auto colon = out.path.find(':'); colon != std::string::npos && !out.path.empty() && out.path[0] == '@')
    out.path = out.path.substr(colon + 1);  // source route
  while (!arg.empty()) {
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    std::size_t sp = arg.find(' ');
    std::string_view p = arg.substr(0, sp);
    arg.remove_prefix(sp == std::string_view::npos ? arg.size() : sp);
    if (p.empty()) continue;
    std::size_t eq = p.find('=');
    out.params[upper(p.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(p.substr(eq + 1));
  }
  return out;
}

}  // namespace

bool recipient_accepted(const std::vector<std::string>& accept, std::string_view address) {
  std::string a = text::ascii_lower(address);
  std::size_t at = a.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == a.size()) return false;
  for (const auto& rule : accept) {
    if (rule == a) return true;
    if (rule.front() == '@' && a.compare(at, std::string::npos, rule) == 0) return true;
  }
  return false;
}

// One client. The session is an explicit state machine (State) and one
// table of verbs (kVerbs), each with a check — may it run in this state, is
// its argument sane — and an action, as OpenSMTPD's smtp_session.c pairs
// smtp_check_* with smtp_proceed_*. Read it against RFC 5321 §4.1.4 (order
// of commands), RFC 3030 (BDAT) and RFC 2033 (LMTP).
class SmtpServer::Session {
 public:
  enum class State {
    Connected,       // before HELO/EHLO/LHLO (again after STARTTLS)
    Greeted,         // no transaction
    HaveSender,      // MAIL accepted
    HaveRecipients,  // at least one RCPT accepted: DATA or BDAT may start
    Chunking,        // BDAT chunks are being stored; only BDAT, RSET, NOOP, QUIT, ...
    Discarding,      // BDAT refused: chunks are read and dropped until LAST or RSET
  };
  // What the connection does after a reply.
  enum class Next { Continue, Close, StartTls };

  struct Reply {
    std::string text;  // "" when nothing is to be sent
    Next next = Next::Continue;
    bool syntax_error = false;  // counts toward max_errors
  };

  Session(SmtpServer& s, net::LineReader& io, std::string p) : server(s), io(io), peer(std::move(p)) {}

  awaitable<Next> greet_and_run();
  awaitable<Next> run();
  awaitable<bool> send(std::string_view text);
  void restart_after_tls() {
    tls_active = true;
    helo.clear();  // RFC 3207 §4.2: the client starts over with EHLO
    reset_transaction();
  }

  SmtpServer& server;
  net::LineReader& io;
  std::string peer;
  std::string session_id = spool::new_spool_id();
  std::size_t commands = 0;

 private:
  struct Verb {
    std::string_view name;
    std::optional<Reply> (Session::*check)() const;  // nullptr: may always run
    awaitable<Reply> (Session::*proceed)();
  };
  static const Verb kVerbs[];

  const SmtpSettings& cfg() const { return server.settings_; }
  const SmtpLimits& lim() const { return server.settings_.limits; }
  bool in_transaction() const { return state == State::HaveRecipients || state == State::Chunking; }

  void reset_transaction() {
    mail_from.clear();
    recipients.clear();
    chunked.reset();
    chunked_size = 0;
    head.clear();
    state = helo.empty() ? State::Connected : State::Greeted;
  }

  // ---- checks: may the verb run now, is its argument sane ----
  std::optional<Reply> check_helo() const;
  std::optional<Reply> check_mail() const;
  std::optional<Reply> check_rcpt() const;
  std::optional<Reply> check_data() const;
  std::optional<Reply> check_bdat() const;
  std::optional<Reply> check_starttls() const;
  // ---- actions ----
  awaitable<Reply> proceed_helo();
  awaitable<Reply> proceed_mail();
  awaitable<Reply> proceed_rcpt();
  awaitable<Reply> proceed_data();
  awaitable<Reply> proceed_bdat();
  awaitable<Reply> proceed_rset();
  awaitable<Reply> proceed_noop();
  awaitable<Reply> proceed_quit();
  awaitable<Reply> proceed_vrfy();
  awaitable<Reply> proceed_help();
  awaitable<Reply> proceed_starttls();

  std::string ehlo_reply(bool extended) const;
  std::string received_header(const std::string& id) const;
  std::string per_recipient(const std::string& one) const;
  std::string final_reply(const spool::AcceptResult& r) const;
  std::string shortage_reply(const spool::Shortage& s) const { return "452 4.3.1 Insufficient system storage: " + s.reason; }
  std::string timeout_reply() const { return "421 4.4.2 " + cfg().hostname + " Error: timeout exceeded"; }
  void keep_head(std::string_view bytes) {
    head.append(bytes.substr(0, mail::kMailHeadBytes - std::min(head.size(), mail::kMailHeadBytes)));
  }
  std::string not_a_mail_reply() const;
  awaitable<spool::AcceptResult> commit(spool::Incoming&& message);

  State state = State::Connected;
  std::string verb, arg;       // the command being handled (arg owned: the reader's buffer moves on)
  net::LineEnd command_end = net::LineEnd::CrLf;  // how that command's line ended
  std::string helo;
  bool tls_active = false;
  std::string mail_from;
  std::vector<std::string> recipients;
  std::optional<spool::Incoming> chunked;  // BDAT: the message being stored
  std::uint64_t chunked_size = 0;          // BDAT: message bytes so far (our Received: not counted)
  std::string head;                        // the client's first bytes: is it a mail? (mail::classify_mail)
  std::size_t errors = 0;
  std::string out;
};

// The verbs, in RFC 5321 §4.1.1 order, then the extensions.
const SmtpServer::Session::Verb SmtpServer::Session::kVerbs[] = {
    {"EHLO", &Session::check_helo, &Session::proceed_helo},
    {"HELO", &Session::check_helo, &Session::proceed_helo},
    {"LHLO", &Session::check_helo, &Session::proceed_helo},  // RFC 2033
    {"MAIL", &Session::check_mail, &Session::proceed_mail},
    {"RCPT", &Session::check_rcpt, &Session::proceed_rcpt},
    {"DATA", &Session::check_data, &Session::proceed_data},
    {"RSET", nullptr, &Session::proceed_rset},
    {"VRFY", nullptr, &Session::proceed_vrfy},
    {"HELP", nullptr, &Session::proceed_help},
    {"NOOP", nullptr, &Session::proceed_noop},
    {"QUIT", nullptr, &Session::proceed_quit},
    {"BDAT", &Session::check_bdat, &Session::proceed_bdat},              // RFC 3030
    {"STARTTLS", &Session::check_starttls, &Session::proceed_starttls},  // RFC 3207
};

namespace {

// "BDAT <size> [LAST]" → (size, last). nullopt: syntax error.
constexpr std::size_t kMaxBdatDigits = 11;  // < 100 GB: far above any message size, far below overflow
std::optional<std::pair<std::uint64_t, bool>> parse_bdat(std::string_view arg) {
  std::size_t sp = arg.find(' ');
  std::string_view n = arg.substr(0, sp);
  bool last = sp != std::string_view::npos && upper(arg.substr(sp + 1)) == "LAST";
  if (n.empty() || n.size() > kMaxBdatDigits || n.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  return std::pair{std::stoull(std::string(n)), last};
}

// MAIL's SIZE=: absent is 0. nullopt: not a number.
constexpr std::size_t kMaxSizeDigits = 18;  // fits std::uint64_t
std::optional<std::uint64_t> parse_size_param(const PathArg& p) {
  auto it = p.params.find("SIZE");
  if (it == p.params.end()) return 0;
  const std::string& n = it->second;
  if (n.empty() || n.size() > kMaxSizeDigits || n.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(n);
}

}  // namespace

// ---- the command loop ----

namespace {

// /metrics: replies by code (a multi-line reply counts once, by its code).
void count_reply(std::string_view text) {
  if (text.size() < 3) return;
  metrics::Registry::global().add("mailgate_smtp_replies_total", "SMTP/LMTP replies sent, by reply code.",
                                  {{"code", std::string(text.substr(0, 3))}});
}

void count_active_sessions(std::size_t active) {
  metrics::Registry::global().set("mailgate_smtp_sessions_active", "SMTP/LMTP sessions open now.", {},
                                  static_cast<double>(active));
}

}  // namespace

awaitable<bool> SmtpServer::Session::send(std::string_view text) {
  count_reply(text);
  out.assign(text);
  out += "\r\n";
  co_return co_await io.write(out, lim().write_timeout);
}

// Returns when the client leaves, is sent away, or asks for STARTTLS.
awaitable<SmtpServer::Session::Next> SmtpServer::Session::run() {
  for (;;) {
    net::ReadError why = net::ReadError::None;
    auto line = co_await io.read_line(lim().max_command_line, lim().command_timeout, why);
    if (!line) {
      if (why == net::ReadError::TooLong) co_await send("500 5.5.2 Error: line too long");
      if (why == net::ReadError::Timeout) co_await send(timeout_reply());
      co_return Next::Close;
    }
    if (++commands > lim().max_commands) {
      const std::string text = "421 4.7.0 " + cfg().hostname + " Error: too many commands";
      co_await send(text);
      co_return Next::Close;
    }
    // A transaction under way may finish; anything else is told to come back.
    if (server.stopping_ && !in_transaction()) {
      const std::string text = "421 4.3.2 " + cfg().hostname + " Service shutting down, try again later";
      co_await send(text);
      co_return Next::Close;
    }
    command_end = line->end;
    const std::size_t sp = line->text.find(' ');
    verb = upper(line->text.substr(0, sp));
    arg = sp == std::string_view::npos ? "" : std::string(line->text.substr(sp + 1));
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();

    const Verb* v = nullptr;
    for (const auto& candidate : kVerbs)
      if (candidate.name == verb) v = &candidate;
    std::optional<Reply> refused;
    if (!v) refused = Reply{"500 5.5.2 Error: command not recognized", Next::Continue, true};
    else if (v->check) refused = (this->*v->check)();
    Reply reply;  // not a ?: around co_await: g++ 12 destroys its temporaries twice
    if (refused) reply = std::move(*refused);
    else reply = co_await (this->*v->proceed)();

    if (reply.syntax_error && ++errors >= lim().max_errors) {
      const std::string text = "421 4.7.0 " + cfg().hostname + " Error: too many errors";
      co_await send(text);
      co_return Next::Close;
    }
    if (!reply.text.empty() && !co_await send(reply.text)) co_return Next::Close;
    // RFC 3207 §5: anything the client pipelined after STARTTLS is discarded.
    if (reply.next == Next::StartTls) io.discard_buffered();
    if (reply.next != Next::Continue) co_return reply.next;
  }
}

// ---- checks ----

std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_helo() const {
  if ((verb == "LHLO") != cfg().lmtp)
    return Reply{cfg().lmtp ? "500 5.5.1 Error: this is LMTP, use LHLO" : "500 5.5.1 Error: command not recognized",
                 Next::Continue, true};
  if (arg.empty()) return Reply{"501 5.5.4 Syntax: " + verb + " hostname", Next::Continue, true};
  return std::nullopt;
}

std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_mail() const {
  if (state == State::Connected)
    return Reply{"503 5.5.1 Error: send " + std::string(cfg().lmtp ? "LHLO" : "HELO/EHLO") + " first"};
  if (state != State::Greeted) return Reply{"503 5.5.1 Error: nested MAIL command"};
  auto p = parse_path_arg(arg, "FROM:");
  if (!p) return Reply{"501 5.5.4 Syntax: MAIL FROM:<address>", Next::Continue, true};
  if (!parse_size_param(*p)) return Reply{"501 5.5.4 Error: bad SIZE parameter", Next::Continue, true};
  return std::nullopt;
}

std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_rcpt() const {
  if (state == State::Chunking || state == State::Discarding) return Reply{"503 5.5.1 Error: BDAT in progress"};
  if (state != State::HaveSender && state != State::HaveRecipients) return Reply{"503 5.5.1 Error: need MAIL command"};
  auto p = parse_path_arg(arg, "TO:");
  if (!p || p->path.empty()) return Reply{"501 5.5.4 Syntax: RCPT TO:<address>", Next::Continue, true};
  return std::nullopt;
}

std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_data() const {
  if (!arg.empty()) return Reply{"501 5.5.4 Syntax: DATA", Next::Continue, true};
  if (state == State::Chunking || state == State::Discarding) return Reply{"503 5.5.1 Error: BDAT in progress"};
  if (state == State::HaveSender) return Reply{"554 5.5.1 Error: no valid recipients"};
  if (state != State::HaveRecipients) return Reply{"503 5.5.1 Error: need RCPT command"};
  return std::nullopt;
}

// Only the syntax: a BDAT out of place is still followed by its chunk, which
// proceed_bdat reads and drops. A size we cannot read leaves no way to find
// the next command.
std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_bdat() const {
  if (!parse_bdat(arg)) return Reply{"501 5.5.4 Syntax: BDAT size [LAST]", Next::Close};
  return std::nullopt;
}

std::optional<SmtpServer::Session::Reply> SmtpServer::Session::check_starttls() const {
  if (!server.tls_ || tls_active) return Reply{"502 5.5.1 Error: command not implemented"};
  if (!arg.empty()) return Reply{"501 5.5.4 Syntax: STARTTLS", Next::Continue, true};
  return std::nullopt;
}

// ---- actions ----

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_helo() {
  helo = arg.substr(0, lim().max_helo);
  reset_transaction();
  co_return Reply{ehlo_reply(verb != "HELO")};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_mail() {
  auto p = parse_path_arg(arg, "FROM:");
  const std::uint64_t size = *parse_size_param(*p);
  if (size > cfg().max_message_size) co_return Reply{"552 5.3.4 Error: message size exceeds fixed limit"};
  if (auto shortage = server.spool_.capacity(size)) co_return Reply{shortage_reply(*shortage)};
  mail_from = p->path;
  state = State::HaveSender;
  co_return Reply{"250 2.1.0 Ok"};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_rcpt() {
  auto p = parse_path_arg(arg, "TO:");
  if (recipients.size() >= lim().max_recipients) co_return Reply{"452 4.5.3 Error: too many recipients"};
  if (!recipient_accepted(cfg().accept, p->path))
    co_return Reply{"550 5.7.1 <" + p->path + ">: Recipient address rejected: not a mailbox of this gateway"};
  recipients.push_back(p->path);
  state = State::HaveRecipients;
  co_return Reply{"250 2.1.5 Ok"};
}

// DATA (RFC 5321 §4.5.2): dot-unstuffing, bare LF stored as CRLF, the size
// limit; the spool file is written as lines arrive, so memory does not grow
// with the message.
//
// The end: after a DATA command ended by CRLF (every MTA), only
// <CRLF>.<CRLF> ends the message; a "." line next to a bare LF is message
// text. Otherwise a relay that passes "\n.\n" through as text would let its
// sender end the message early and write the rest as commands: a second mail
// with a forged sender on the relay's connection (SMTP smuggling,
// CVE-2023-51764). A client that sent "DATA\n" speaks bare LF itself, is no
// relay for anyone, and ends with "\n.\n" (or any "." line).
awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_data() {
  const bool bare_lf_client = command_end == net::LineEnd::BareLf;
  std::optional<spool::Incoming> msg;
  std::string refused;
  if (auto shortage = server.spool_.capacity()) refused = shortage_reply(*shortage);
  else msg.emplace(server.spool_.begin());
  if (msg) msg->write(received_header(msg->id()));
  if (!co_await send("354 End data with <CR><LF>.<CR><LF>")) co_return Reply{"", Next::Close};
  std::uint64_t size = 0;
  net::LineEnd previous = net::LineEnd::CrLf;  // the DATA command's own line ending
  for (;;) {
    net::ReadError why = net::ReadError::None;
    auto line = co_await io.read_line(lim().max_data_line, lim().data_timeout, why);
    if (!line) {  // nothing half-written stays: ~Incoming removes the file
      if (why == net::ReadError::TooLong) co_return Reply{"500 5.5.2 Error: line too long", Next::Close};
      if (why == net::ReadError::Timeout) co_return Reply{timeout_reply(), Next::Close};
      co_return Reply{"", Next::Close};
    }
    const bool dot = line->text == ".";
    if (dot && (bare_lf_client || (previous == net::LineEnd::CrLf && line->end == net::LineEnd::CrLf))) break;
    previous = line->end;
    std::string_view content = line->text;
    if (!dot && !content.empty() && content.front() == '.') content.remove_prefix(1);  // RFC 5321 §4.5.2
    size += content.size() + 2;
    if (size > cfg().max_message_size && refused.empty())
      refused = "552 5.3.4 Error: message larger than " + std::to_string(cfg().max_message_size) + " bytes";
    if (msg && refused.empty()) {
      msg->write(content);
      msg->write("\r\n");
      keep_head(content);
      keep_head("\r\n");
    }
  }
  if (refused.empty()) refused = not_a_mail_reply();
  std::string text;
  if (refused.empty()) {
    spool::AcceptResult r = co_await commit(std::move(*msg));
    text = final_reply(r);
  } else {
    text = per_recipient(refused);
  }
  reset_transaction();
  co_return Reply{std::move(text)};
}

// BDAT (RFC 3030): the chunk follows the command line; it is read in full
// whatever the answer, or the next command could not be found. No dots, no
// line endings: the bytes are the message.
awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_bdat() {
  const auto [size, last] = *parse_bdat(arg);
  std::string refused;
  if (state == State::HaveRecipients) {
    if (auto shortage = server.spool_.capacity()) {
      state = State::Discarding;
      refused = shortage_reply(*shortage);
    } else {
      chunked.emplace(server.spool_.begin());
      chunked->write(received_header(chunked->id()));
      chunked_size = 0;
      state = State::Chunking;
    }
  } else if (state == State::Discarding) {
    refused = "554 5.5.1 Error: transaction failed";
  } else if (state != State::Chunking) {
    refused = "503 5.5.1 Error: need RCPT command";  // no transaction: the chunk is dropped
  }
  for (std::uint64_t need = size; need > 0;) {
    net::ReadError why = net::ReadError::None;
    const std::size_t ask = static_cast<std::size_t>(std::min<std::uint64_t>(need, lim().bdat_read_chunk));
    std::string_view got = co_await io.read_some(ask, lim().data_timeout, why);
    if (got.empty()) {  // ~Incoming removes the partial file
      if (why == net::ReadError::Timeout) co_return Reply{timeout_reply(), Next::Close};
      co_return Reply{"", Next::Close};
    }
    need -= got.size();
    if (state != State::Chunking) continue;
    chunked_size += got.size();
    if (chunked_size > cfg().max_message_size) {
      chunked.reset();
      state = State::Discarding;
      refused = "552 5.3.4 Error: message larger than " + std::to_string(cfg().max_message_size) + " bytes";
      continue;
    }
    chunked->write(got);
    keep_head(got);
  }
  if (refused.empty() && last) refused = not_a_mail_reply();
  if (!refused.empty()) {
    if (last) reset_transaction();
    co_return Reply{per_recipient(refused)};
  }
  if (!last) co_return Reply{"250 2.0.0 Ok: " + std::to_string(size) + " octets received"};
  spool::AcceptResult r = co_await commit(std::move(*chunked));
  std::string text = final_reply(r);
  reset_transaction();
  co_return Reply{std::move(text)};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_rset() {
  reset_transaction();
  co_return Reply{"250 2.0.0 Ok"};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_noop() { co_return Reply{"250 2.0.0 Ok"}; }

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_quit() {
  co_return Reply{"221 2.0.0 Bye", Next::Close};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_vrfy() {
  co_return Reply{"252 2.0.0 Cannot VRFY user; send mail and we will try"};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_help() {
  std::string text = "214 2.0.0 Commands:";
  for (const auto& v : kVerbs) text += " " + std::string(v.name);
  co_return Reply{std::move(text)};
}

awaitable<SmtpServer::Session::Reply> SmtpServer::Session::proceed_starttls() {
  co_return Reply{"220 2.0.0 Ready to start TLS", Next::StartTls};
}

// ---- replies ----

std::string SmtpServer::Session::ehlo_reply(bool extended) const {
  std::string r = "250-" + cfg().hostname + " greets " + (helo.empty() ? peer : helo);
  if (!extended) return "250 " + cfg().hostname;
  std::vector<std::string> ext = {"PIPELINING", "SIZE " + std::to_string(cfg().max_message_size), "8BITMIME",
                                  "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"};
  if (server.tls_ && !tls_active) ext.push_back("STARTTLS");
  for (std::size_t i = 0; i < ext.size(); ++i) r += "\r\n250" + std::string(i + 1 == ext.size() ? " " : "-") + ext[i];
  return r;
}

std::string SmtpServer::Session::received_header(const std::string& id) const {
  std::string with = cfg().lmtp ? "LMTP" : (tls_active ? "ESMTPS" : "ESMTP");
  std::string h = "Received: from " + (helo.empty() ? std::string("unknown") : helo) + " ([" + peer + "])\r\n\tby " +
                  cfg().hostname + " (mailgate) with " + with + " id " + id;
  if (recipients.size() == 1) h += "\r\n\tfor <" + recipients[0] + ">";
  return h + "; " + rfc5322_date() + "\r\n";
}

// LMTP answers the end of the message once per accepted recipient (RFC 2033 §4.2).
// The rule `deliver` and the pipeline apply (mail::classify_mail), on what
// the client sent (our Received: line is not theirs): text without one field
// a mail system writes (From, To, Subject, Date, ...) in its first 64 KiB is
// refused, rather than spooled as a mail with only our Received line. 554 5.6.0 (RFC 3463 §3.7: the content makes it
// undeliverable) puts the bounce with the sender, who can fix it; a 250
// would leave it in failed/, where nobody who sent it looks.
std::string SmtpServer::Session::not_a_mail_reply() const {
  const mail::MailVerdict verdict = mail::classify_mail(head);
  if (verdict == mail::MailVerdict::Mail) return "";
  return "554 5.6.0 Error: " + std::string(mail::to_string(verdict));
}

std::string SmtpServer::Session::per_recipient(const std::string& one) const {
  if (!cfg().lmtp) return one;
  std::string all;
  for (std::size_t i = 0; i < recipients.size(); ++i) all += (i ? "\r\n" : "") + one;
  return all;
}

// The spool's verdict as a reply: the kind of refusal, not its wording,
// decides between "no room" (452) and "something else went wrong" (451).
std::string SmtpServer::Session::final_reply(const spool::AcceptResult& r) const {
  std::string one;
  switch (r.kind) {
    case spool::AcceptResult::Kind::Accepted: one = "250 2.0.0 Ok: queued as " + r.id; break;
    case spool::AcceptResult::Kind::Duplicate: one = "250 2.0.0 Ok: already received as " + r.id; break;
    case spool::AcceptResult::Kind::TemporaryFailure:
      switch (r.refusal) {
        case spool::Refusal::DiskFull:
        case spool::Refusal::QueueFull: one = "452 4.3.1 Insufficient system storage: " + r.reason; break;
        case spool::Refusal::None:
        case spool::Refusal::Temporary: one = "451 4.3.0 Error: " + r.reason + ", try again later"; break;
      }
      break;
  }
  return per_recipient(one);
}

// Hands the message to the spool's group commit and waits for the batch.
awaitable<spool::AcceptResult> SmtpServer::Session::commit(spool::Incoming&& message) {
  const std::uint64_t size = message.size();
  std::string source = cfg().lmtp ? "lmtp" : "smtp";
  // LMTP too: one spool message for the whole transaction, every recipient
  // in its envelope (the reply is repeated per recipient).
  message.set_envelope(spool::Envelope{mail_from, recipients});
  spool::AcceptResult r =
      co_await spool::async_commit(server.spool_, std::move(message), std::move(source), use_awaitable);
  log::info("smtp.message", {{"spool_id", r.id}, {"session", session_id}, {"client", peer},
                             {"from", mail_from}, {"rcpts", std::to_string(recipients.size())},
                             {"size", std::to_string(size)},
                             {"result", r.kind == spool::AcceptResult::Kind::Accepted    ? "queued"
                                        : r.kind == spool::AcceptResult::Kind::Duplicate ? "duplicate"
                                                                                          : "tempfail: " + r.reason}});
  if (r.kind == spool::AcceptResult::Kind::Accepted && server.on_accepted_) server.on_accepted_(r.id);
  co_return r;
}

SmtpServer::SmtpServer(asio::any_io_executor executor, SmtpSettings settings, spool::Spool& spool,
                       std::function<void(const std::string&)> on_accepted)
    : executor_(executor), settings_(std::move(settings)), spool_(spool), on_accepted_(std::move(on_accepted)) {
  if (!settings_.tls_cert_file.empty() && !settings_.tls_key_file.empty()) {
    tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(tls_->native_handle(), TLS1_2_VERSION);
    tls_->use_certificate_chain_file(settings_.tls_cert_file);
    tls_->use_private_key_file(settings_.tls_key_file, ssl::context::pem);
  }
}

SmtpServer::~SmtpServer() = default;

void SmtpServer::start() {
  for (const auto& [host, port] : settings_.listen) {
    error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("smtp.listen: '" + host + "' is not an IP address");
    tcp::endpoint ep(address, port);
    auto a = std::make_unique<tcp::acceptor>(executor_);
    a->open(ep.protocol());
    a->set_option(tcp::acceptor::reuse_address(true));
    a->bind(ep, ec);
    if (ec) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    a->listen(asio::socket_base::max_listen_connections);
    asio::co_spawn(executor_, accept_loop(*a), asio::detached);
    log::info("smtp.listening", {{"address", host + ":" + std::to_string(a->local_endpoint().port())},
                                 {"protocol", settings_.lmtp ? "lmtp" : "smtp"}});
    acceptors_.push_back(std::move(a));
  }
}

std::vector<std::uint16_t> SmtpServer::bound_ports() const {
  std::vector<std::uint16_t> ports;
  for (const auto& a : acceptors_) ports.push_back(a->local_endpoint().port());
  return ports;
}

void SmtpServer::stop() {
  stopping_ = true;
  for (auto& a : acceptors_) {
    error_code ec;
    a->close(ec);
  }
}

void SmtpServer::set_accept(std::vector<std::string> accept) { settings_.accept = std::move(accept); }

awaitable<void> SmtpServer::accept_loop(tcp::acceptor& acceptor) {
  while (!stopping_) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopping_) co_return;
      continue;
    }
    asio::co_spawn(executor_, serve(std::move(socket)), asio::detached);
  }
}

awaitable<void> SmtpServer::serve(tcp::socket socket) {
  error_code ec;
  std::string ip = socket.remote_endpoint(ec).address().to_string();
  beast::tcp_stream tcp(std::move(socket));
  auto refuse = [&](const char* text) -> awaitable<void> {
    std::string line = std::string("421 4.7.0 ") + settings_.hostname + " " + text + "\r\n";
    count_reply(line);
    tcp.expires_after(settings_.limits.refuse_timeout);
    co_await asio::async_write(tcp, asio::buffer(line), asio::redirect_error(use_awaitable, ec));
  };
  if (sessions_ >= settings_.limits.max_connections) {
    log::warn("smtp.refused", {{"client", ip}, {"reason", "too many connections"}});
    co_await refuse("Error: too many connections, try again later");
    co_return;
  }
  if (per_ip_[ip] >= settings_.limits.max_connections_per_ip) {
    log::warn("smtp.refused", {{"client", ip}, {"reason", "too many connections from this address"}});
    co_await refuse("Error: too many connections from your address");
    co_return;
  }
  ++sessions_;
  ++per_ip_[ip];
  count_active_sessions(sessions_);
  struct Count {
    SmtpServer* s;
    std::string ip;
    ~Count() {
      count_active_sessions(--s->sessions_);
      if (--s->per_ip_[ip] == 0) s->per_ip_.erase(ip);
    }
  } count{this, ip};

  net::AsioByteStream<beast::tcp_stream> plain(tcp);
  net::LineReader io(plain, settings_.limits.read_chunk);
  Session session(*this, io, ip);
  auto next = co_await session.greet_and_run();
  if (next == Session::Next::StartTls) {
    ssl::stream<beast::tcp_stream&> tls(tcp, *tls_);
    tcp.expires_after(settings_.limits.tls_handshake_timeout);
    co_await tls.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    tcp.expires_never();
    if (ec) {
      log::warn("smtp.tls_failed", {{"session", session.session_id}, {"client", ip}, {"error", ec.message()}});
    } else {
      net::AsioByteStream<ssl::stream<beast::tcp_stream&>> secure(tls);
      io.switch_to(secure);
      session.restart_after_tls();
      co_await session.run();
      io.switch_to(plain);  // `secure` ends here
    }
  }
  log::info("smtp.disconnect", {{"session", session.session_id}, {"client", ip},
                                {"commands", std::to_string(session.commands)}});
  tcp.socket().shutdown(tcp::socket::shutdown_both, ec);
}

awaitable<SmtpServer::Session::Next> SmtpServer::Session::greet_and_run() {
  log::info("smtp.connect", {{"session", session_id}, {"client", peer}});
  metrics::Registry::global().add("mailgate_smtp_sessions_total", "SMTP/LMTP sessions greeted.",
                                  {{"protocol", cfg().lmtp ? "lmtp" : "smtp"}});
  const std::string greeting = "220 " + cfg().hostname + (cfg().lmtp ? " LMTP" : " ESMTP") + " mailgate";
  if (!co_await send(greeting)) co_return Next::Close;
  co_return co_await run();
}

awaitable<void> SmtpServer::converse(net::ByteStream& stream, std::string peer) {
  net::LineReader io(stream, settings_.limits.read_chunk);
  Session session(*this, io, std::move(peer));
  co_await session.greet_and_run();
  log::info("smtp.disconnect", {{"session", session.session_id}, {"client", session.peer},
                                {"commands", std::to_string(session.commands)}});
}

void SmtpServer::reconfigure(SmtpSettings settings) {
  // Loaded before anything changes: a bad certificate leaves the old one in use.
  std::unique_ptr<ssl::context> tls;
  if (!settings.tls_cert_file.empty() && !settings.tls_key_file.empty()) {
    try {
      tls = std::make_unique<ssl::context>(ssl::context::tls_server);
      SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
      tls->use_certificate_chain_file(settings.tls_cert_file);
      tls->use_private_key_file(settings.tls_key_file, ssl::context::pem);
    } catch (const std::exception& e) {
      throw std::runtime_error("smtp.tls: cannot load " + settings.tls_cert_file + " / " + settings.tls_key_file +
                               ": " + e.what());
    }
  }
  settings.listen = settings_.listen;
  settings.lmtp = settings_.lmtp;
  settings_ = std::move(settings);
  if (tls_) retired_tls_.push_back(std::move(tls_));
  tls_ = std::move(tls);
}

}  // namespace mailgate::smtp
