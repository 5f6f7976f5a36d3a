#include "mailgate/imap/fetcher.hpp"

#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "mailgate/log/log.hpp"
#include "mailgate/net/tls.hpp"

namespace mailgate::imap {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Test hook for the crash tests: MAILGATE_FAILPOINT=NAME kills the process
// at that point, as a power cut would.
void failpoint(const char* name) {
  static const char* armed = std::getenv("MAILGATE_FAILPOINT");
  if (armed && std::string_view(armed) == name) ::kill(::getpid(), SIGKILL);
}

std::string quoted(const std::string& s) {
  auto q = quote(s);
  if (!q) throw ImapError(ImapError::Kind::Protocol, "a folder name or credential contains a line break");
  return *q;
}

bool has_code(const Tagged& t, std::string_view code) {
  return t.response.code && !t.response.code->items.empty() && t.response.code->items[0].is_atom(code);
}

// Streams the BODY[] literal of each FETCH response into a new spool file.
struct SpoolSink : LiteralSink {
  spool::Spool& spool;
  std::optional<spool::Incoming> current;
  std::string refused;  // the spool cannot take mail now
  explicit SpoolSink(spool::Spool& s) : spool(s) {}
  bool begin(std::string_view line, std::uint64_t size) override {
    std::string upper_line(line);
    for (char& c : upper_line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper_line.find("BODY[]") == std::string::npos) return false;
    current.reset();
    if (auto full = spool.check_capacity(size)) refused = *full;
    current.emplace(spool.begin());
    return true;
  }
  void write(std::string_view bytes) override {
    if (current && refused.empty()) current->write(bytes);
  }
};

}  // namespace

std::string uid_set(const std::vector<std::uint64_t>& uids) {
  std::string out;
  for (std::size_t i = 0; i < uids.size();) {
    std::size_t j = i;
    while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(uids[i]);
    if (j > i) {
      out += ':';  // not ":" + to_string(…): g++ 12's -Wrestrict false positive (GCC bug 105329)
      out += std::to_string(uids[j]);
    }
    i = j + 1;
  }
  return out;
}

Fetcher::Fetcher(asio::any_io_executor ex, spool::Spool& spool, MailboxSettings settings)
    : ex_(ex),
      spool_(spool),
      s_(std::move(settings)),
      tls_(make_client_tls_context(TlsSettings{s_.ca_file, true})),
      source_("imap:" + s_.name),
      sleeper_(ex) {}

Fetcher::~Fetcher() = default;

void Fetcher::stop() {
  stopping_ = true;
  sleeper_.cancel();
  if (current_) current_->close();
}

awaitable<void> Fetcher::sleep(std::chrono::milliseconds d) {
  sleeper_.expires_after(d);
  error_code ec;
  co_await sleeper_.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<void> Fetcher::run() {
  int failures = 0;
  while (!stopping_) {
    std::string error;
    ImapError::Kind kind = ImapError::Kind::Network;
    selected_ = false;
    try {
      co_await session();
      failures = 0;
      continue;  // an IDLE restart, or stop()
    } catch (const ImapError& e) {
      error = e.what();
      kind = e.kind;
    } catch (const std::exception& e) {
      error = e.what();  // the spool, mostly: retried like a network failure
    }
    current_ = nullptr;
    if (stopping_) break;
    // Exponential backoff with jitter; a wrong password waits like any
    // other failure, so a misconfigured box never hammers its server. A
    // session that got as far as SELECT starts the count again.
    failures = selected_ ? 1 : failures + 1;
    auto cap = std::min<std::int64_t>(s_.backoff_cap.count(), s_.backoff_base.count() << std::min(failures - 1, 20));
    std::uniform_int_distribution<std::int64_t> jitter(cap / 2, cap);
    std::chrono::milliseconds wait{jitter(rng_)};
    log::warn(kind == ImapError::Kind::Auth ? "imap.auth_failed" : "imap.error",
              {{"mailbox", s_.name}, {"error", error}, {"attempt", std::to_string(failures)},
               {"retry_in_ms", std::to_string(wait.count())}});
    co_await sleep(wait);
  }
  log::info("imap.stopped", {{"mailbox", s_.name}});
}

std::string Fetcher::read_token() const {
  std::string token;
  if (!s_.token_file.empty()) {
    std::ifstream f(s_.token_file);
    if (!f) throw ImapError(ImapError::Kind::Auth, "cannot read token_file " + s_.token_file);
    std::stringstream ss;
    ss << f.rdbuf();
    token = ss.str();
  } else if (!s_.token_command.empty()) {
    FILE* p = ::popen(s_.token_command.c_str(), "r");
    if (!p) throw ImapError(ImapError::Kind::Auth, "cannot run token_command");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && token.size() < 64 * 1024) token.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) throw ImapError(ImapError::Kind::Auth, "token_command failed (status " + std::to_string(rc) + ")");
  }
  token = trim(token);
  if (token.empty()) throw ImapError(ImapError::Kind::Auth, "the XOAUTH2 access token is empty");
  return token;
}

awaitable<void> Fetcher::login(Connection& c) {
  if (c.authenticated()) co_return;
  AuthMethod method = s_.auth;
  if (method == AuthMethod::Auto) method = c.has("AUTH=PLAIN") ? AuthMethod::Plain : AuthMethod::Login;
  Tagged r;
  if (method == AuthMethod::XOAuth2) {
    // Re-read at every login: a rejected token is replaced by the next one.
    const std::string token = read_token();
    const std::string initial = base64("user=" + s_.username + "\x01" "auth=Bearer " + token + "\x01\x01");
    r = co_await c.authenticate("XOAUTH2", initial);
  } else if (method == AuthMethod::Plain) {
    const std::string initial = base64(std::string("\0", 1) + s_.username + std::string("\0", 1) + s_.password);
    r = co_await c.authenticate("PLAIN", initial);
  } else {
    if (c.has("LOGINDISABLED")) throw ImapError(ImapError::Kind::Auth, "server disables LOGIN on this connection");
    const std::string cmd = "LOGIN " + quoted(s_.username) + " " + quoted(s_.password);
    r = co_await c.command(cmd);
  }
  if (!r.ok()) throw ImapError(ImapError::Kind::Auth, "login as " + s_.username + " refused: " + r.response.text);
  if (!has_code(r, "CAPABILITY")) co_await c.load_capabilities();  // they may change after login
}

awaitable<void> Fetcher::session() {
  Connection c(ex_, tls_, s_.limits);
  current_ = &c;
  log::debug("imap.connecting", {{"mailbox", s_.name}, {"server", s_.host + ":" + std::to_string(s_.port)}});
  co_await c.open(s_.host, s_.port, s_.security);
  log::debug("imap.connected", {{"mailbox", s_.name}, {"preauth", c.authenticated() ? "yes" : "no"}});
  co_await login(c);
  log::info("imap.logged_in", {{"mailbox", s_.name}, {"server", s_.host + ":" + std::to_string(s_.port)},
                               {"user", s_.username}});

  std::uint64_t uidvalidity = 0, exists = 0;
  std::function<void(const Response&)> on_select = [&](const Response& r) {
    if (r.name == "EXISTS" && r.number) exists = *r.number;
    if (r.name == "OK" && r.code && r.code->items.size() >= 2 && r.code->items[0].is_atom("UIDVALIDITY"))
      uidvalidity = r.code->items[1].number().value_or(0);
  };
  const std::string select = "SELECT " + quoted(s_.folder);
  Tagged sel = co_await c.command(select, on_select);
  if (!sel.ok()) throw ImapError(ImapError::Kind::Protocol, "cannot select " + s_.folder + ": " + sel.response.text);

  auto mark = spool_.imap_mark(s_.name);
  if (mark.uidvalidity != uidvalidity) {
    // The mailbox was rebuilt (or this is the first visit): every UID is
    // new. Scan it all; the seen-set drops what was imported before.
    if (mark.uidvalidity != 0)
      log::warn("imap.uidvalidity_changed", {{"mailbox", s_.name}, {"old", std::to_string(mark.uidvalidity)},
                                             {"new", std::to_string(uidvalidity)},
                                             {"note", "rescanning; already imported messages are recognised"}});
    mark = {uidvalidity, 0};
    spool_.set_imap_mark(s_.name, mark);
  }
  uidvalidity_ = uidvalidity;
  last_uid_ = mark.last_uid;
  selected_ = true;
  log::info("imap.selected", {{"mailbox", s_.name}, {"folder", s_.folder}, {"exists", std::to_string(exists)},
                              {"uidvalidity", std::to_string(uidvalidity)}, {"last_uid", std::to_string(last_uid_)},
                              {"idle", s_.idle && c.has("IDLE") ? "yes" : "no"}});

  while (!stopping_) {
    co_await import_new(c);
    if (stopping_) break;
    if (s_.idle && c.has("IDLE")) {
      if (co_await c.idle(s_.idle_restart) == Connection::IdleResult::Expired) {
        log::debug("imap.idle_restart", {{"mailbox", s_.name}});
        co_return;  // run() reconnects at once
      }
    } else {
      co_await sleep(std::chrono::duration_cast<std::chrono::milliseconds>(s_.poll_interval));
      if (stopping_) break;
      Tagged noop = co_await c.command("NOOP");  // keeps the session and notices a dead one
      if (!noop.ok()) throw ImapError(ImapError::Kind::Protocol, "NOOP failed: " + noop.response.text);
    }
  }
  Tagged bye = co_await c.command("LOGOUT");
  (void)bye;
}

awaitable<void> Fetcher::import_new(Connection& c) {
  std::vector<std::uint64_t> uids;
  std::function<void(const Response&)> on_search = [&](const Response& r) {
    if (r.name != "SEARCH") return;
    for (const auto& v : r.data)
      if (auto n = v.number(); n && *n > last_uid_) uids.push_back(*n);  // "n:*" includes the last UID even if < n
  };
  const std::string search = "UID SEARCH UID " + std::to_string(last_uid_ + 1) + ":*";
  Tagged t = co_await c.command(search, on_search);
  if (!t.ok()) throw ImapError(ImapError::Kind::Protocol, "UID SEARCH failed: " + t.response.text);
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  for (std::size_t i = 0; i < uids.size() && !stopping_; i += s_.batch) {
    std::vector<std::uint64_t> batch(uids.begin() + static_cast<std::ptrdiff_t>(i),
                                     uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), i + s_.batch)));
    co_await fetch_batch(c, batch);
  }
}

// One UID FETCH: bodies streamed to spool files, the whole batch committed
// as one group, then acknowledged to the server, then the mark advanced.
// When the spool refuses mail (disk nearly full), what it took is still
// acknowledged and the rest waits: the throw leads to run()'s backoff.
awaitable<void> Fetcher::fetch_batch(Connection& c, const std::vector<std::uint64_t>& uids) {
  SpoolSink sink(spool_);
  std::map<std::uint64_t, spool::Incoming> bodies;
  std::function<void(const Response&)> on_fetch = [&](const Response& r) {
    if (r.name != "FETCH" || r.data.empty() || r.data[0].kind != Value::Kind::List) return;
    const auto& items = r.data[0].items;
    std::optional<std::uint64_t> uid;
    const Value* body = nullptr;
    for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
      if (items[i].is_atom("UID")) uid = items[i + 1].number();
      if (items[i].is_atom("BODY[]")) body = &items[i + 1];
    }
    if (uid && body && sink.current) {
      bodies.emplace(*uid, std::move(*sink.current));
    } else if (uid && body && body->kind == Value::Kind::String) {
      // Sent as a quoted string rather than a literal: legal, and small.
      if (auto full = spool_.check_capacity(body->text.size())) sink.refused = *full;
      spool::Incoming in = spool_.begin();
      in.write(body->text);
      bodies.emplace(*uid, std::move(in));
    }  // BODY[] NIL, or no UID: that message counts as not returned
    sink.current.reset();
  };
  const std::string fetch = "UID FETCH " + uid_set(uids) + " (UID BODY.PEEK[])";
  Tagged t = co_await c.command(fetch, on_fetch, &sink);
  if (!t.ok()) throw ImapError(ImapError::Kind::Protocol, "UID FETCH failed: " + t.response.text);
  if (!sink.refused.empty()) throw std::runtime_error("the spool refuses mail: " + sink.refused);

  // Commit them all at once (one group commit), then look at the answers.
  struct Wait {
    std::vector<std::optional<spool::AcceptResult>> results;
    std::size_t left = 0;
    asio::steady_timer done;
    explicit Wait(asio::any_io_executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
  };
  auto wait = std::make_shared<Wait>(ex_);
  std::vector<std::uint64_t> order;
  for (auto& [uid, body] : bodies) order.push_back(uid);
  wait->results.resize(order.size());
  wait->left = order.size();
  for (std::size_t i = 0; i < order.size(); ++i) {
    spool_.commit_async(std::move(bodies.at(order[i])), source_, [wait, i, ex = ex_](spool::AcceptResult r) {
      asio::post(ex, [wait, i, r = std::move(r)]() mutable {
        wait->results[i] = std::move(r);
        if (--wait->left == 0) wait->done.cancel();
      });
    });
  }
  if (wait->left > 0) {
    error_code ec;
    co_await wait->done.async_wait(asio::redirect_error(use_awaitable, ec));
  }

  // Acknowledge the longest run of UIDs that are safe in the spool. A UID
  // the server did not return is never acknowledged (with after_import:
  // delete that would destroy unread mail); the session ends and the next
  // one searches again — an expunged message is simply not found then.
  std::vector<std::uint64_t> handled;
  std::string refused;
  for (std::uint64_t uid : uids) {
    auto it = std::find(order.begin(), order.end(), uid);
    if (it == order.end()) {
      refused = "no body for UID " + std::to_string(uid) + " (expunged meanwhile, or a server fault)";
      break;
    }
    const auto& r = *wait->results[static_cast<std::size_t>(it - order.begin())];
    if (r.kind == spool::AcceptResult::Kind::TemporaryFailure) {
      refused = "the spool refuses mail (UID " + std::to_string(uid) + "): " + r.reason;
      break;  // keep the order: the mark never passes a message not yet safe
    }
    log::info("imap.message", {{"mailbox", s_.name}, {"uid", std::to_string(uid)}, {"spool_id", r.id},
                               {"result", r.kind == spool::AcceptResult::Kind::Accepted ? "queued" : "duplicate"}});
    if (r.kind == spool::AcceptResult::Kind::Accepted && on_accepted) on_accepted(r.id);
    handled.push_back(uid);
  }
  if (!handled.empty()) {
    failpoint("imap_after_spool_commit");
    co_await acknowledge(c, uid_set(handled));
    last_uid_ = std::max(last_uid_, handled.back());
    spool_.set_imap_mark(s_.name, {uidvalidity_, last_uid_});
  }
  if (!refused.empty()) throw std::runtime_error(refused);
}

// after_import, for messages already durable in the spool. A failure here
// is logged and does not undo the import: a later re-fetch is recognised.
awaitable<void> Fetcher::acknowledge(Connection& c, const std::string& set) {
  auto expunge_deleted = [&]() -> awaitable<Tagged> {
    const std::string store = "UID STORE " + set + " +FLAGS.SILENT (\\Deleted)";
    Tagged st = co_await c.command(store);
    if (!st.ok()) co_return st;
    // A plain EXPUNGE would also remove messages someone else flagged
    // \Deleted, including ones not imported yet: without UIDPLUS the
    // flagged messages stay for the server's or a person's expunge.
    if (!c.has("UIDPLUS")) {
      log::warn("imap.no_uidplus", {{"mailbox", s_.name}, {"uids", set},
                                    {"note", "flagged \\Deleted, not expunged (the server lacks UID EXPUNGE)"}});
      co_return st;
    }
    const std::string expunge = "UID EXPUNGE " + set;
    co_return co_await c.command(expunge);
  };
  Tagged r;
  switch (s_.after_import) {
    case AfterImport::Seen: {
      const std::string store = "UID STORE " + set + " +FLAGS.SILENT (\\Seen)";
      r = co_await c.command(store);
      break;
    }
    case AfterImport::Delete:
      r = co_await expunge_deleted();
      break;
    case AfterImport::Move: {
      const bool move = c.has("MOVE");
      const std::string cmd = (move ? "UID MOVE " : "UID COPY ") + set + " " + quoted(s_.move_to);
      r = co_await c.command(cmd);
      if (!r.ok() && has_code(r, "TRYCREATE")) {
        const std::string create = "CREATE " + quoted(s_.move_to);
        Tagged created = co_await c.command(create);
        log::info("imap.folder_created", {{"mailbox", s_.name}, {"folder", s_.move_to},
                                          {"result", created.ok() ? "ok" : created.response.text}});
        r = co_await c.command(cmd);
      }
      if (r.ok() && !move) r = co_await expunge_deleted();
      break;
    }
  }
  if (!r.ok())
    log::warn("imap.after_import_failed", {{"mailbox", s_.name}, {"uids", set}, {"error", r.response.text},
                                           {"note", "the messages are imported; they stay in the folder"}});
}

}  // namespace mailgate::imap
