// One coroutine per connection. The session is an explicit state machine;
// each verb is checked (may it run now, is its argument sane) and then
// carried out, as OpenSMTPD's smtp_session.c does.
#include "mailgate/smtp/smtp_server.hpp"

#include <ctime>

#include "mailgate/log/log.hpp"
#include "mailgate/spool/async_commit.hpp"

namespace mailgate::smtp {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
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
  std::string a = lower(address);
  std::size_t at = a.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == a.size()) return false;
  for (const auto& rule : accept) {
    if (rule == a) return true;
    if (rule.front() == '@' && a.compare(at, std::string::npos, rule) == 0) return true;
  }
  return false;
}

struct SmtpServer::Session {
  enum class State { Connected, Greeted, HaveSender, HaveRecipients };
  enum class Outcome { Close, StartTls };

  SmtpServer& server;
  std::string peer;
  std::string session_id = spool::new_spool_id();
  State state = State::Connected;
  std::string helo;
  bool tls_active = false;
  std::string mail_from;
  std::vector<std::string> recipients;
  std::optional<spool::Incoming> chunked;  // BDAT in progress
  bool chunked_refused = false;
  std::size_t errors = 0, commands = 0;
  std::string in;  // received, not yet consumed
  std::size_t in_pos = 0;
  std::string out;

  Session(SmtpServer& s, std::string p) : server(s), peer(std::move(p)) {}
  const SmtpSettings& cfg() const { return server.settings_; }
  const SmtpLimits& lim() const { return server.settings_.limits; }

  void reset_transaction() {
    mail_from.clear();
    recipients.clear();
    chunked.reset();
    chunked_refused = false;
    if (state != State::Connected) state = State::Greeted;
  }

  // Takes a view, never an owning temporary: see the co_await rule in
  // messenger_client.cpp.
  template <class Stream>
  awaitable<bool> send(Stream& s, std::string_view text) {
    out.assign(text);
    out += "\r\n";
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(60));  // a client that never reads
    error_code ec;
    co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(use_awaitable, ec));
    beast::get_lowest_layer(s).expires_never();  // reads are timed by read_some's watchdog
    co_return !ec;
  }

  // Idle timeouts cancel the pending read instead of closing the socket
  // (what beast::tcp_stream's expiry does), so the client still gets its
  // 421. State shared with the timer handler, which may outlive a read.
  struct Watch {
    bool reading = false;
    bool timed_out = false;
    tcp::socket* socket = nullptr;
  };
  std::shared_ptr<Watch> watch = std::make_shared<Watch>();
  std::optional<asio::steady_timer> idle_timer;

  template <class Stream>
  awaitable<std::size_t> read_some(Stream& s, beast::tcp_stream& tcp, asio::mutable_buffer into,
                                   std::chrono::seconds timeout, std::string& why) {
    if (!idle_timer) idle_timer.emplace(tcp.get_executor());
    watch->socket = &tcp.socket();
    watch->reading = true;
    watch->timed_out = false;
    idle_timer->expires_after(timeout);
    idle_timer->async_wait([w = watch](const error_code& ec) {
      if (!ec && w->reading && w->socket) {
        w->timed_out = true;
        error_code ignored;
        w->socket->cancel(ignored);
      }
    });
    error_code ec;
    std::size_t n = co_await s.async_read_some(into, asio::redirect_error(use_awaitable, ec));
    watch->reading = false;
    idle_timer->cancel();
    if (ec) why = watch->timed_out ? "timeout" : "disconnected";
    co_return ec ? 0 : n;
  }

  ~Session() { watch->socket = nullptr; }

  // One line without its line ending. Returns false at EOF, error, timeout
  // or an over-long line (`why` says which).
  template <class Stream>
  awaitable<bool> read_line(Stream& s, beast::tcp_stream& tcp, std::string& line, std::size_t max,
                            std::chrono::seconds timeout, std::string& why) {
    for (;;) {
      std::size_t nl = in.find('\n', in_pos);
      if (nl != std::string::npos) {
        std::size_t end = nl > in_pos && in[nl - 1] == '\r' ? nl - 1 : nl;
        line.assign(in, in_pos, end - in_pos);
        in_pos = nl + 1;
        co_return true;
      }
      if (in.size() - in_pos > max) {
        why = "line too long";
        co_return false;
      }
      if (in_pos > 0) {
        in.erase(0, in_pos);
        in_pos = 0;
      }
      std::size_t old = in.size();
      in.resize(old + 64 * 1024);
      std::size_t n = co_await read_some(s, tcp, asio::buffer(in.data() + old, in.size() - old), timeout, why);
      in.resize(old + n);
      if (n == 0) co_return false;
    }
  }

  template <class Stream>
  awaitable<Outcome> run(Stream& s, beast::tcp_stream& tcp);

  std::string ehlo_reply(bool extended) const {
    std::string r = "250-" + cfg().hostname + " greets " + (helo.empty() ? peer : helo);
    if (!extended) return "250 " + cfg().hostname;
    std::vector<std::string> ext = {"PIPELINING", "SIZE " + std::to_string(cfg().max_message_size), "8BITMIME",
                                    "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"};
    if (server.tls_ && !tls_active) ext.push_back("STARTTLS");
    for (std::size_t i = 0; i < ext.size(); ++i) r += "\r\n250" + std::string(i + 1 == ext.size() ? " " : "-") + ext[i];
    return r;
  }

  std::string received_header(const std::string& id) const {
    std::string with = cfg().lmtp ? "LMTP" : (tls_active ? "ESMTPS" : "ESMTP");
    std::string h = "Received: from " + (helo.empty() ? std::string("unknown") : helo) + " ([" + peer + "])\r\n\tby " +
                    cfg().hostname + " (mailgate) with " + with + " id " + id;
    if (recipients.size() == 1) h += "\r\n\tfor <" + recipients[0] + ">";
    return h + "; " + rfc5322_date() + "\r\n";
  }

  // LMTP answers the end of DATA once per accepted recipient (RFC 2033 §4.2).
  std::string per_recipient(const std::string& one) const {
    if (!cfg().lmtp) return one;
    std::string all;
    for (std::size_t i = 0; i < recipients.size(); ++i) all += (i ? "\r\n" : "") + one;
    return all;
  }

  // After the message: one reply (SMTP) or one per recipient (LMTP).
  std::string final_reply(const spool::AcceptResult& r) const {
    std::string one;
    switch (r.kind) {
      case spool::AcceptResult::Kind::Accepted: one = "250 2.0.0 Ok: queued as " + r.id; break;
      case spool::AcceptResult::Kind::Duplicate: one = "250 2.0.0 Ok: already received as " + r.id; break;
      case spool::AcceptResult::Kind::TemporaryFailure:
        one = r.reason.find("full") != std::string::npos ? "452 4.3.1 Insufficient system storage: " + r.reason
                                                          : "451 4.3.0 Error: " + r.reason + ", try again later";
        break;
    }
    return per_recipient(one);
  }

  // Hands the message to the spool's group commit and waits for the batch.
  awaitable<spool::AcceptResult> commit(spool::Incoming&& message) {
    const std::uint64_t size = message.size();
    std::string source = cfg().lmtp ? "lmtp" : "smtp";
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

  // DATA: dot-unstuffing, bare LF → CRLF, size limit; the spool file is
  // written as lines arrive, so memory does not grow with the message.
  template <class Stream>
  awaitable<std::string> receive_data(Stream& s, beast::tcp_stream& tcp, bool& keep_open) {
    std::optional<spool::Incoming> msg;
    std::string refused;
    if (auto full = server.spool_.check_capacity()) refused = "452 4.3.1 Insufficient system storage: " + *full;
    else msg.emplace(server.spool_.begin());
    if (msg) msg->write(received_header(msg->id()));
    std::uint64_t size = 0;
    std::string line, why;
    for (;;) {
      if (!co_await read_line(s, tcp, line, lim().max_data_line, lim().data_timeout, why)) {
        keep_open = false;  // nothing half-written stays: ~Incoming removes the file
        if (why == "line too long") co_return "500 5.5.2 Error: line too long";
        if (why == "timeout") co_return "421 4.4.2 " + cfg().hostname + " Error: timeout exceeded";
        co_return "";
      }
      if (line == ".") break;
      std::string_view content = line;
      if (!content.empty() && content.front() == '.') content.remove_prefix(1);  // RFC 5321 §4.5.2
      size += content.size() + 2;
      if (size > cfg().max_message_size && refused.empty())
        refused = "552 5.3.4 Error: message larger than " + std::to_string(cfg().max_message_size) + " bytes";
      if (msg && refused.empty()) {
        msg->write(content);
        msg->write("\r\n");
      }
    }
    if (!refused.empty()) co_return per_recipient(refused);
    auto r = co_await commit(std::move(*msg));
    co_return final_reply(r);
  }
};

// The command loop. Returns when the client leaves or asks for STARTTLS.
template <class Stream>
awaitable<SmtpServer::Session::Outcome> SmtpServer::Session::run(Stream& s, beast::tcp_stream& tcp) {
  std::string line, why;
  for (;;) {
    if (!co_await read_line(s, tcp, line, lim().max_command_line, lim().command_timeout, why)) {
      const std::string timeout = "421 4.4.2 " + cfg().hostname + " Error: timeout exceeded";
      if (why == "line too long") co_await send(s, "500 5.5.2 Error: line too long");
      if (why == "timeout") co_await send(s, timeout);
      co_return Outcome::Close;
    }
    if (++commands > lim().max_commands) {
      const std::string text = "421 4.7.0 " + cfg().hostname + " Error: too many commands";
      co_await send(s, text);
      co_return Outcome::Close;
    }
    if (server.stopping_ && state != State::HaveRecipients) {
      const std::string text = "421 4.3.2 " + cfg().hostname + " Service shutting down, try again later";
      co_await send(s, text);
      co_return Outcome::Close;
    }
    std::size_t sp = line.find(' ');
    const std::string verb = upper(line.substr(0, sp));
    std::string arg = sp == std::string::npos ? "" : line.substr(sp + 1);
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    std::string reply;
    bool bad = false;

    if (verb == "EHLO" || verb == "HELO" || verb == "LHLO") {
      bool lhlo = verb == "LHLO";
      if (lhlo != cfg().lmtp) {
        reply = cfg().lmtp ? "500 5.5.1 Error: this is LMTP, use LHLO" : "500 5.5.1 Error: command not recognized";
        bad = true;
      } else if (arg.empty()) {
        reply = "501 5.5.4 Syntax: " + verb + " hostname";
        bad = true;
      } else {
        helo = arg.substr(0, 255);
        reset_transaction();
        state = State::Greeted;
        reply = ehlo_reply(verb != "HELO");
      }
    } else if (verb == "MAIL") {
      auto p = parse_path_arg(arg, "FROM:");
      if (state == State::Connected) reply = "503 5.5.1 Error: send " + std::string(cfg().lmtp ? "LHLO" : "HELO/EHLO") + " first";
      else if (state != State::Greeted) reply = "503 5.5.1 Error: nested MAIL command";
      else if (!p) reply = "501 5.5.4 Syntax: MAIL FROM:<address>", bad = true;
      else {
        std::string size = p->params.count("SIZE") ? p->params["SIZE"] : "0";
        bool size_ok = !size.empty() && size.size() < 19 && size.find_first_not_of("0123456789") == std::string::npos;
        if (!size_ok) reply = "501 5.5.4 Error: bad SIZE parameter", bad = true;
        else if (std::stoull(size) > cfg().max_message_size)
          reply = "552 5.3.4 Error: message size exceeds fixed limit";
        else if (auto full = server.spool_.check_capacity(std::stoull(size)))
          reply = "452 4.3.1 Insufficient system storage: " + *full;
        else {
          mail_from = p->path;
          state = State::HaveSender;
          reply = "250 2.1.0 Ok";
        }
      }
    } else if (verb == "RCPT") {
      auto p = parse_path_arg(arg, "TO:");
      if (state != State::HaveSender && state != State::HaveRecipients) reply = "503 5.5.1 Error: need MAIL command";
      else if (!p || p->path.empty()) reply = "501 5.5.4 Syntax: RCPT TO:<address>", bad = true;
      else if (recipients.size() >= lim().max_recipients) reply = "452 4.5.3 Error: too many recipients";
      else if (!recipient_accepted(server.settings_.accept, p->path))
        reply = "550 5.7.1 <" + p->path + ">: Recipient address rejected: not a mailbox of this gateway";
      else {
        recipients.push_back(p->path);
        state = State::HaveRecipients;
        reply = "250 2.1.5 Ok";
      }
    } else if (verb == "DATA") {
      if (!arg.empty()) reply = "501 5.5.4 Syntax: DATA", bad = true;
      else if (state != State::HaveRecipients) reply = state == State::HaveSender ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
      else if (chunked) reply = "503 5.5.1 Error: BDAT in progress";
      else {
        if (!co_await send(s, "354 End data with <CR><LF>.<CR><LF>")) co_return Outcome::Close;
        bool keep_open = true;
        reply = co_await receive_data(s, tcp, keep_open);
        if (!keep_open) {
          if (!reply.empty()) co_await send(s, reply);
          co_return Outcome::Close;
        }
        reset_transaction();
      }
    } else if (verb == "BDAT") {
      // RFC 3030: BDAT <size> [LAST]; the chunk follows immediately.
      std::size_t sp2 = arg.find(' ');
      std::string n = arg.substr(0, sp2);
      bool last = sp2 != std::string::npos && upper(arg.substr(sp2 + 1)) == "LAST";
      bool n_ok = !n.empty() && n.size() < 12 && n.find_first_not_of("0123456789") == std::string::npos;
      if (!n_ok) {
        reply = "501 5.5.4 Syntax: BDAT size [LAST]";
        bad = true;
        co_await send(s, reply);
        co_return Outcome::Close;  // we cannot know where the chunk ends
      }
      std::uint64_t need = std::stoull(n);
      if (state != State::HaveRecipients) chunked_refused = true, reply = "503 5.5.1 Error: need RCPT command";
      if (!chunked && !chunked_refused) {
        if (auto full = server.spool_.check_capacity()) chunked_refused = true, reply = "452 4.3.1 Insufficient system storage: " + *full;
        else {
          chunked.emplace(server.spool_.begin());
          chunked->write(received_header(chunked->id()));
        }
      }
      // Read the chunk (from what is buffered, then the socket).
      while (need > 0) {
        std::size_t have = in.size() - in_pos;
        if (have == 0) {
          in.clear();
          in_pos = 0;
          in.resize(static_cast<std::size_t>(std::min<std::uint64_t>(need, 256 * 1024)));
          std::size_t got = co_await read_some(s, tcp, asio::buffer(in), lim().data_timeout, why);
          in.resize(got);
          if (got == 0) co_return Outcome::Close;  // ~Incoming removes the partial file
          continue;
        }
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(need, have));
        if (chunked && !chunked_refused) {
          if (chunked->size() + take > cfg().max_message_size + 4096) {
            chunked_refused = true;
            reply = "552 5.3.4 Error: message larger than " + std::to_string(cfg().max_message_size) + " bytes";
          } else {
            chunked->write(std::string_view(in).substr(in_pos, take));
          }
        }
        in_pos += take;
        need -= take;
      }
      if (chunked_refused) {
        if (reply.empty()) reply = "554 5.5.1 Error: transaction failed";
        if (last) reset_transaction();
      } else if (last) {
        auto r = co_await commit(std::move(*chunked));
        reply = final_reply(r);
        reset_transaction();
      } else {
        reply = "250 2.0.0 Ok: " + n + " octets received";
      }
    } else if (verb == "RSET") {
      reset_transaction();
      reply = "250 2.0.0 Ok";
    } else if (verb == "NOOP") {
      reply = "250 2.0.0 Ok";
    } else if (verb == "QUIT") {
      co_await send(s, "221 2.0.0 Bye");
      co_return Outcome::Close;
    } else if (verb == "VRFY") {
      reply = "252 2.0.0 Cannot VRFY user; send mail and we will try";
    } else if (verb == "HELP") {
      reply = "214 2.0.0 Commands: EHLO HELO LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS";
    } else if (verb == "STARTTLS") {
      if (!server.tls_ || tls_active) reply = "502 5.5.1 Error: command not implemented";
      else if (!arg.empty()) reply = "501 5.5.4 Syntax: STARTTLS", bad = true;
      else {
        co_await send(s, "220 2.0.0 Ready to start TLS");
        // RFC 3207 §5: anything the client pipelined after STARTTLS is discarded.
        in.clear();
        in_pos = 0;
        co_return Outcome::StartTls;
      }
    } else {
      reply = "500 5.5.2 Error: command not recognized";
      bad = true;
    }
    if (bad && ++errors >= lim().max_errors) {
      const std::string text = "421 4.7.0 " + cfg().hostname + " Error: too many errors";
      co_await send(s, text);
      co_return Outcome::Close;
    }
    if (!co_await send(s, reply)) co_return Outcome::Close;
  }
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
    tcp.expires_after(std::chrono::seconds(5));
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
  struct Count {
    SmtpServer* s;
    std::string ip;
    ~Count() {
      --s->sessions_;
      if (--s->per_ip_[ip] == 0) s->per_ip_.erase(ip);
    }
  } count{this, ip};

  Session session(*this, ip);
  log::info("smtp.connect", {{"session", session.session_id}, {"client", ip}});
  std::string greeting = "220 " + settings_.hostname + (settings_.lmtp ? " LMTP" : " ESMTP") + " mailgate";
  if (!co_await session.send(tcp, greeting)) co_return;
  auto outcome = co_await session.run(tcp, tcp);
  if (outcome == Session::Outcome::StartTls) {
    ssl::stream<beast::tcp_stream&> tls(tcp, *tls_);
    tcp.expires_after(std::chrono::seconds(30));
    co_await tls.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    tcp.expires_never();
    if (ec) {
      log::warn("smtp.tls_failed", {{"session", session.session_id}, {"client", ip}, {"error", ec.message()}});
      co_return;
    }
    session.tls_active = true;
    session.state = Session::State::Connected;  // RFC 3207: start over with EHLO
    session.helo.clear();
    session.reset_transaction();
    co_await session.run(tls, tcp);
  }
  log::info("smtp.disconnect", {{"session", session.session_id}, {"client", ip},
                                {"commands", std::to_string(session.commands)}});
  tcp.socket().shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace mailgate::smtp
