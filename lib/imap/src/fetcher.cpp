#include "mailgate/imap/fetcher.hpp"
#include "mailgate/net/backoff.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "mailgate/log/log.hpp"
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/net/tls.hpp"
#include "mailgate/spool/async_commit.hpp"
#include "mailgate/text/ascii.hpp"
#include "mailgate/text/encoding.hpp"
#include "mailgate/text/file.hpp"

namespace mailgate::imap {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {



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

// A UID from the server, checked: RFC 3501 UIDs are 32-bit nz-numbers.
std::uint64_t checked_uid(std::uint64_t uid) {
  if (uid == 0 || uid > kMaxUid)
    throw ImapError(ImapError::Kind::Protocol, "the server sent UID " + std::to_string(uid) + ", outside 1.." +
                                                   std::to_string(kMaxUid));
  return uid;
}

// "… BODY[] {123}" (or ~{123}): the literal is a whole message.
bool announces_body(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::size_t open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  line = line.substr(0, open);
  if (!line.empty() && line.back() == '~') line.remove_suffix(1);
  while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
  if (line.size() < 7) return false;
  std::string tail(line.substr(line.size() - 7));
  for (char& c : tail) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return tail == " BODY[]" || tail == "(BODY[]";
}

// The value after `name` in a FETCH response's item list (the last one, if
// the server sent it twice), or null.
const Value* fetch_item(const Response& r, std::string_view name) {
  if (r.name != "FETCH" || r.data.empty() || r.data[0].kind != Value::Kind::List) return nullptr;
  const auto& items = r.data[0].items;
  const Value* found = nullptr;
  for (std::size_t i = 0; i + 1 < items.size(); i += 2)
    if (items[i].is_atom(name)) found = &items[i + 1];
  return found;
}

// The response's UID (UINT64_MAX when it is not a number: checked_uid refuses it).
std::optional<std::uint64_t> fetch_uid(const Response& r) {
  const Value* v = fetch_item(r, "UID");
  if (!v) return std::nullopt;
  return v->number().value_or(UINT64_MAX);
}

}  // namespace

// Streams the BODY[] literal of a FETCH response into a spool file: only a
// body that may be wanted (a requested UID not received yet, or one whose UID
// comes after the literal), within the size limit, while the spool has room.
// One file at a time: the fetcher commits it before the next response is read.
struct Fetcher::BodySink : LiteralSink {
  spool::Spool& spool;
  const std::set<std::uint64_t>& wanted;
  const std::map<std::uint64_t, spool::AcceptResult>& received;
  std::uint64_t max_size;
  std::optional<spool::Incoming> current;
  std::uint64_t oversized = 0;  // this response's body was over max_size (dropped): its size
  std::string refused;     // this response's body did not fit in the spool (dropped)
  std::size_t unrequested = 0;
  BodySink(spool::Spool& s, const std::set<std::uint64_t>& w, const std::map<std::uint64_t, spool::AcceptResult>& r,
           std::uint64_t max)
      : spool(s), wanted(w), received(r), max_size(max) {}
  void next_response() {
    current.reset();  // an unclaimed file is removed
    oversized = 0;
    refused.clear();
  }
  Take begin(std::string_view line, std::uint64_t size) override {
    if (!announces_body(line)) return Take::Inline;  // not a body: the connection's inline limit applies
    if (current) return Take::Discard;  // a second body in one response
    // Counted in `unrequested` once the whole response is read.
    if (auto uid = fetch_uid_before_literal(line); uid && (!wanted.count(*uid) || received.count(*uid)))
      return Take::Discard;
    if (size > max_size) {
      oversized = size;
      return Take::Discard;
    }
    if (auto full = spool.check_capacity(size)) {
      refused = *full;
      return Take::Discard;
    }
    current.emplace(spool.begin());
    return Take::Stream;
  }
  void write(std::string_view bytes) override {
    if (current) current->write(bytes);
  }
};


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

Fetcher::Fetcher(asio::any_io_executor ex, spool::Spool& spool, std::unique_ptr<MarkStore> marks,
                 MailboxSettings settings)
    : ex_(ex),
      spool_(spool),
      marks_(std::move(marks)),
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
    imported_ = false;
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
    // other failure, so a misconfigured box never hammers its server. Only a
    // session that imported something starts the count again: one that
    // fails the same way after SELECT every time (a message the server
    // cannot deliver, a flood) still backs off.
    failures = imported_ ? 1 : failures + 1;
    const std::chrono::milliseconds wait = net::backoff(s_.backoff_base, s_.backoff_cap, failures - 1, net::kHalfJitter, rng_);
    log::warn(kind == ImapError::Kind::Auth ? "imap.auth_failed" : "imap.error",
              {{"mailbox", s_.name}, {"error", error}, {"attempt", std::to_string(failures)},
               {"retry_in_ms", std::to_string(wait.count())}});
    co_await sleep(wait);
  }
  log::info("imap.stopped", {{"mailbox", s_.name}});
}

namespace {

std::string read_token(const MailboxSettings& s_) {
  std::string token;
  if (!s_.token_file.empty()) {
    auto bytes = text::read_file(s_.token_file);
    if (!bytes) throw ImapError(ImapError::Kind::Auth, "cannot read token_file " + s_.token_file);
    token = std::move(*bytes);
  } else if (!s_.token_command.empty()) {
    FILE* p = ::popen(s_.token_command.c_str(), "r");
    if (!p) throw ImapError(ImapError::Kind::Auth, "cannot run token_command");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && token.size() < 64 * 1024) token.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) throw ImapError(ImapError::Kind::Auth, "token_command failed (status " + std::to_string(rc) + ")");
  }
  token = std::string(text::trim(token));
  if (token.empty()) throw ImapError(ImapError::Kind::Auth, "the XOAUTH2 access token is empty");
  return token;
}

// Shared by the fetcher and probe_mailbox: check-config --connect logs in
// exactly as the daemon does.
awaitable<void> login(Connection& c, const MailboxSettings& s_) {
  if (c.authenticated()) co_return;
  AuthMethod method = s_.auth;
  if (method == AuthMethod::Auto) method = c.has("AUTH=PLAIN") ? AuthMethod::Plain : AuthMethod::Login;
  Tagged r;
  if (method == AuthMethod::XOAuth2) {
    // Re-read at every login: a rejected token is replaced by the next one.
    const std::string token = read_token(s_);
    const std::string initial = text::base64_encode("user=" + s_.username + "\x01" "auth=Bearer " + token + "\x01\x01");
    r = co_await c.authenticate("XOAUTH2", initial);
  } else if (method == AuthMethod::Plain) {
    const std::string initial = text::base64_encode(std::string("\0", 1) + s_.username + std::string("\0", 1) + s_.password);
    r = co_await c.authenticate("PLAIN", initial);
  } else {
    if (c.has("LOGINDISABLED")) throw ImapError(ImapError::Kind::Auth, "server disables LOGIN on this connection");
    const std::string cmd = "LOGIN " + quoted(s_.username) + " " + quoted(s_.password);
    r = co_await c.command(cmd);
  }
  if (!r.ok()) throw ImapError(ImapError::Kind::Auth, "login as " + s_.username + " refused: " + r.response.text);
  if (!has_code(r, "CAPABILITY")) co_await c.load_capabilities();  // they may change after login
}

}  // namespace

awaitable<std::uint64_t> probe_mailbox(asio::any_io_executor ex, const MailboxSettings& s) {
  ssl::context tls = make_client_tls_context(TlsSettings{s.ca_file, true});
  Connection c(ex, tls, s.limits);
  co_await c.open(s.host, s.port, s.security);
  co_await login(c, s);
  std::uint64_t exists = 0;
  std::function<void(const Response&)> on_examine = [&](const Response& r) {
    if (r.name == "EXISTS" && r.number) exists = *r.number;
  };
  const std::string examine = "EXAMINE " + quoted(s.folder);
  Tagged sel = co_await c.command(examine, on_examine);
  if (!sel.ok()) throw ImapError(ImapError::Kind::Protocol, "cannot select " + s.folder + ": " + sel.response.text);
  try {
    Tagged bye = co_await c.command("LOGOUT");
    (void)bye;
  } catch (const ImapError&) {
    // The server's BYE to LOGOUT: the check is over either way.
  }
  c.close();
  co_return exists;
}

awaitable<void> Fetcher::session() {
  Connection c(ex_, tls_, s_.limits);
  current_ = &c;
  co_await log_in(c);
  co_await select_folder(c);
  while (!stopping_) {
    co_await import_new(c);
    if (stopping_) break;
    const bool go_on = co_await wait_for_news(c);
    if (!go_on) co_return;  // run() reconnects at once
  }
  Tagged bye = co_await c.command("LOGOUT");
  (void)bye;
}

awaitable<void> Fetcher::log_in(Connection& c) {
  log::debug("imap.connecting", {{"mailbox", s_.name}, {"server", s_.host + ":" + std::to_string(s_.port)}});
  co_await c.open(s_.host, s_.port, s_.security);
  log::debug("imap.connected", {{"mailbox", s_.name}, {"preauth", c.authenticated() ? "yes" : "no"}});
  co_await login(c, s_);
  log::info("imap.logged_in", {{"mailbox", s_.name}, {"server", s_.host + ":" + std::to_string(s_.port)},
                               {"user", s_.username}});
}

awaitable<void> Fetcher::select_folder(Connection& c) {
  std::uint64_t uidvalidity = 0, exists = 0;
  std::function<void(const Response&)> on_select = [&](const Response& r) {
    if (r.name == "EXISTS" && r.number) exists = *r.number;
    if (r.name == "OK" && r.code && r.code->items.size() >= 2 && r.code->items[0].is_atom("UIDVALIDITY"))
      uidvalidity = r.code->items[1].number().value_or(0);
  };
  const std::string select = "SELECT " + quoted(s_.folder);
  Tagged sel = co_await c.command(select, on_select);
  if (!sel.ok()) throw ImapError(ImapError::Kind::Protocol, "cannot select " + s_.folder + ": " + sel.response.text);
  restore_mark(uidvalidity);
  log::info("imap.selected", {{"mailbox", s_.name}, {"folder", s_.folder}, {"exists", std::to_string(exists)},
                              {"uidvalidity", std::to_string(uidvalidity)}, {"last_uid", std::to_string(last_uid_)},
                              {"idle", s_.idle && c.has("IDLE") ? "yes" : "no"}});
}

// The stored mark, unless it cannot be right for this folder any more.
void Fetcher::restore_mark(std::uint64_t uidvalidity) {
  Mark mark = marks_->mark(s_.name);
  if (mark.last_uid > kMaxUid) {
    // Saved by a version that took a hostile UID of 2^64-1 as the mark: no
    // UID can follow it, so the mailbox would never import again. Rescan;
    // the seen-set recognises what was imported.
    log::warn("imap.mark_out_of_range", {{"mailbox", s_.name}, {"last_uid", std::to_string(mark.last_uid)},
                                         {"note", "rescanning; already imported messages are recognised"}});
    mark.last_uid = 0;
    marks_->set_mark(s_.name, mark);
  }
  if (mark.uidvalidity != uidvalidity) {
    // The mailbox was rebuilt (or this is the first visit): every UID is
    // new. Scan it all; the seen-set drops what was imported before.
    if (mark.uidvalidity != 0)
      log::warn("imap.uidvalidity_changed", {{"mailbox", s_.name}, {"old", std::to_string(mark.uidvalidity)},
                                             {"new", std::to_string(uidvalidity)},
                                             {"note", "rescanning; already imported messages are recognised"}});
    mark = {uidvalidity, 0};
    marks_->set_mark(s_.name, mark);
  }
  uidvalidity_ = uidvalidity;
  last_uid_ = mark.last_uid;
}

awaitable<bool> Fetcher::wait_for_news(Connection& c) {
  if (s_.idle && c.has("IDLE")) {
    const Connection::IdleResult idled = co_await c.idle(s_.idle_restart);
    if (idled == Connection::IdleResult::Changed) co_return true;
    log::debug("imap.idle_restart", {{"mailbox", s_.name}});
    co_return false;
  }
  co_await sleep(std::chrono::duration_cast<std::chrono::milliseconds>(s_.poll_interval));
  if (stopping_) co_return true;  // session() logs out
  Tagged noop = co_await c.command("NOOP");  // keeps the session and notices a dead one
  if (!noop.ok()) throw ImapError(ImapError::Kind::Protocol, "NOOP failed: " + noop.response.text);
  co_return true;
}

namespace {

constexpr const char* kBacklogHelp = "Messages above the mark still to import in the current IMAP import.";

std::string one_decimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

awaitable<void> Fetcher::import_new(Connection& c) {
  const auto now = std::chrono::steady_clock::now();
  progress_ = Progress{};
  progress_.started = progress_.last_log = now;
  for (bool more = true; more && !stopping_;) {
    std::vector<std::uint64_t> uids = co_await search(c, more);
    for (std::size_t i = 0; i < uids.size() && !stopping_; i += s_.batch) {
      std::vector<std::uint64_t> batch(uids.begin() + static_cast<std::ptrdiff_t>(i),
                                       uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), i + s_.batch)));
      co_await fetch_batch(c, batch);
    }
  }
  if (stopping_) co_return;
  finish_progress();
  // Everything above the mark is imported: the mailbox is in sync now.
  const double unix_now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  metrics::Registry::global().set("mailgate_imap_last_sync_timestamp_seconds",
                                  "When the IMAP mailbox last had nothing left to import (UNIX seconds).",
                                  {{"mailbox", s_.name}}, unix_now);
}

// One imap.progress line per progress_interval while a backlog is imported
// (done/total, rate, ETA), and the backlog gauge after every batch, so a
// first import of tens of thousands of messages is visible as it goes.
void Fetcher::note_progress(std::size_t settled) {
  progress_.done += settled;
  progress_.remaining -= std::min<std::uint64_t>(progress_.remaining, settled);
  progress_.total = std::max(progress_.total, progress_.done + progress_.remaining);
  metrics::Registry::global().set("mailgate_imap_backlog_messages", kBacklogHelp, {{"mailbox", s_.name}},
                                  static_cast<double>(progress_.remaining));
  const auto now = std::chrono::steady_clock::now();
  if (progress_.remaining == 0 || now - progress_.last_log < s_.progress_interval) return;
  progress_.last_log = now;
  progress_.logged = true;
  const double elapsed = std::chrono::duration<double>(now - progress_.started).count();
  const double rate = elapsed > 0 ? static_cast<double>(progress_.done) / elapsed : 0;
  log::info("imap.progress",
            {{"mailbox", s_.name}, {"done", std::to_string(progress_.done)}, {"total", std::to_string(progress_.total)},
             {"rate_per_s", one_decimal(rate)},
             {"eta_s", rate > 0 ? std::to_string(static_cast<std::uint64_t>(
                                      std::ceil(static_cast<double>(progress_.remaining) / rate)))
                                : "unknown"}});
}

// The end of a backlog: one last line when progress was reported (a small
// import, the usual new message, says nothing more than imap.message).
void Fetcher::finish_progress() {
  metrics::Registry::global().set("mailgate_imap_backlog_messages", kBacklogHelp, {{"mailbox", s_.name}}, 0);
  if (!progress_.logged) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - progress_.started).count();
  log::info("imap.progress", {{"mailbox", s_.name}, {"done", std::to_string(progress_.done)},
                              {"total", std::to_string(progress_.done)},
                              {"rate_per_s", one_decimal(elapsed > 0 ? static_cast<double>(progress_.done) / elapsed : 0)},
                              {"eta_s", "0"}, {"note", "backlog imported"}});
  progress_.logged = false;
}

// SEARCH numbers are streamed into a set that keeps the lowest
// max_search_uids: a server answering with millions of UIDs (or the same
// ones forever, until the connection's untagged limits end it) costs a
// bounded set, and the mark still moves through a large mailbox in order.
awaitable<std::vector<std::uint64_t>> Fetcher::search(Connection& c, bool& more) {
  more = false;
  if (last_uid_ >= kMaxUid) co_return std::vector<std::uint64_t>{};  // no UID can follow until UIDVALIDITY changes
  std::set<std::uint64_t> found;
  std::uint64_t above = 0;  // every UID above the mark: the backlog, for progress
  std::optional<std::uint64_t> bad;
  const std::size_t cap = std::max<std::size_t>(1, s_.max_search_uids);
  SearchNumbers on_number = [&](std::uint64_t n) {
    if (n == 0 || n > kMaxUid) {
      if (!bad) bad = n;
      return;
    }
    if (n <= last_uid_ || found.count(n)) return;  // "n:*" includes the last UID even if < n
    ++above;
    if (found.size() < cap) {
      found.insert(n);
      return;
    }
    more = true;
    if (n < *found.rbegin()) {
      found.erase(std::prev(found.end()));
      found.insert(n);
    }
  };
  // A SEARCH the connection could not stream (odd syntax) arrives parsed.
  std::function<void(const Response&)> on_search = [&](const Response& r) {
    if (r.name != "SEARCH") return;
    for (const auto& v : r.data)
      if (auto n = v.number()) on_number(*n);
      else if (v.kind == Value::Kind::Atom && !v.text.empty() && std::isdigit(static_cast<unsigned char>(v.text[0])))
        on_number(UINT64_MAX);  // digits beyond 64 bits
  };
  const std::string text = "UID SEARCH UID " + std::to_string(last_uid_ + 1) + ":*";
  Tagged t = co_await c.command(text, on_search, nullptr, &on_number);
  if (!t.ok()) throw ImapError(ImapError::Kind::Protocol, "UID SEARCH failed: " + t.response.text);
  if (bad) checked_uid(*bad);
  progress_.remaining = above;
  progress_.total = std::max(progress_.total, progress_.done + above);
  metrics::Registry::global().set("mailgate_imap_backlog_messages", kBacklogHelp, {{"mailbox", s_.name}},
                                  static_cast<double>(above));
  co_return std::vector<std::uint64_t>(found.begin(), found.end());
}

struct Fetcher::Batch {
  std::set<std::uint64_t> wanted;
  std::vector<std::uint64_t> to_fetch;               // not known to be oversized
  std::map<std::uint64_t, std::uint64_t> oversized;  // UID → size
  std::map<std::uint64_t, spool::AcceptResult> results;
  // A body the spool refused before it was written is a TemporaryFailure here too.
  void refuse(std::uint64_t uid, const std::string& why) {
    results.emplace(uid, spool::AcceptResult{spool::AcceptResult::Kind::TemporaryFailure, "", why});
  }
};

struct Fetcher::Settled {
  std::vector<std::uint64_t> imported, skipped;  // only UIDs below the first unsettled one
  std::string stop;                              // why the run ended early ("" if it did not)
};

struct Fetcher::Claimed {
  std::uint64_t uid;
  spool::Incoming message;
};

// One batch: sizes first (RFC822.SIZE), so an oversized message is never
// downloaded; then one UID FETCH whose bodies are streamed to spool files,
// each committed (spool::async_commit) before the next response is read —
// one spool file open at a time, however many bodies the server sends. Then
// the longest run of UIDs from the lowest that is settled (in the spool, or
// skipped as oversized) is acknowledged, and only after that the mark moves.
// When the spool refuses a message (disk nearly full, queue over its limit)
// the run stops there: the throw leads to run()'s backoff and the next
// session fetches that message again; the later ones are recognised.
awaitable<void> Fetcher::fetch_batch(Connection& c, const std::vector<std::uint64_t>& uids) {
  Batch batch;
  batch.wanted.insert(uids.begin(), uids.end());
  co_await sort_by_size(c, uids, batch);
  if (!batch.to_fetch.empty()) co_await fetch_bodies(c, batch);
  const Settled settled = settle(uids, batch);
  if (!settled.imported.empty() || !settled.skipped.empty()) co_await conclude(c, settled, batch);
  if (!settled.stop.empty()) throw std::runtime_error(settled.stop);
}

awaitable<void> Fetcher::sort_by_size(Connection& c, const std::vector<std::uint64_t>& uids, Batch& batch) {
  std::map<std::uint64_t, std::uint64_t> sizes;  // only for wanted UIDs: bounded by the batch
  std::function<void(const Response&)> on_size = [&](const Response& r) {
    const std::optional<std::uint64_t> uid = fetch_uid(r);
    const Value* size = fetch_item(r, "RFC822.SIZE");
    if (uid && size && size->number() && batch.wanted.count(checked_uid(*uid))) sizes[*uid] = *size->number();
  };
  const std::string fetch_sizes = "UID FETCH " + uid_set(uids) + " (UID RFC822.SIZE)";
  Tagged st = co_await c.command(fetch_sizes, on_size);
  if (!st.ok()) throw ImapError(ImapError::Kind::Protocol, "UID FETCH (sizes) failed: " + st.response.text);
  for (std::uint64_t uid : uids) {
    auto it = sizes.find(uid);
    if (it != sizes.end() && it->second > s_.max_message_size) batch.oversized[uid] = it->second;
    else batch.to_fetch.push_back(uid);
  }
}

awaitable<void> Fetcher::fetch_bodies(Connection& c, Batch& batch) {
  BodySink sink(spool_, batch.wanted, batch.results, s_.max_message_size);
  const std::string fetch_bodies = "UID FETCH " + uid_set(batch.to_fetch) + " (UID BODY.PEEK[])";
  co_await c.send(fetch_bodies);
  for (;;) {
    sink.next_response();
    Response r = co_await c.next(&sink);
    if (r.kind == Response::Kind::Tagged) {
      if (r.name != "OK") throw ImapError(ImapError::Kind::Protocol, "UID FETCH failed: " + r.text);
      break;
    }
    std::optional<Claimed> claimed = claim_body(r, sink, batch);
    if (!claimed) continue;
    std::string source = source_;  // no envelope: the spool reads the recipients from the header
    spool::AcceptResult committed =
        co_await spool::async_commit(spool_, std::move(claimed->message), std::move(source), use_awaitable);
    batch.results.emplace(claimed->uid, std::move(committed));
  }
  if (sink.unrequested > 0)
    log::warn("imap.unrequested_bodies", {{"mailbox", s_.name}, {"count", std::to_string(sink.unrequested)},
                                          {"note", "bodies for UIDs not asked for (or sent twice) were discarded"}});
}

std::optional<Fetcher::Claimed> Fetcher::claim_body(const Response& r, BodySink& sink, Batch& batch) {
  const std::optional<std::uint64_t> uid = fetch_uid(r);
  if (!uid) return std::nullopt;  // a flag update, or a body without its UID: not returned
  checked_uid(*uid);
  const Value* body = fetch_item(r, "BODY[]");
  if (!body) return std::nullopt;
  if (!batch.wanted.count(*uid) || batch.results.count(*uid) || batch.oversized.count(*uid)) {
    ++sink.unrequested;  // never imported: only what was asked for, once
    return std::nullopt;
  }
  if (sink.oversized) {  // RFC822.SIZE said less than the literal
    batch.oversized[*uid] = sink.oversized;
    return std::nullopt;
  }
  if (!sink.refused.empty()) {
    batch.refuse(*uid, sink.refused);
    return std::nullopt;
  }
  std::optional<spool::Incoming> in = std::move(sink.current);
  sink.current.reset();
  if (in) return Claimed{*uid, std::move(*in)};
  if (body->kind != Value::Kind::String) return std::nullopt;  // BODY[] NIL: not returned
  // Sent as a quoted string (or a small inline literal): legal, and small.
  if (body->text.size() > s_.max_message_size) {
    batch.oversized[*uid] = body->text.size();
    return std::nullopt;
  }
  if (auto full = spool_.check_capacity(body->text.size())) {
    batch.refuse(*uid, *full);
    return std::nullopt;
  }
  Claimed claimed{*uid, spool_.begin()};
  claimed.message.write(body->text);
  return claimed;
}

// The longest settled run from the lowest UID. A UID the server did not
// return is never acknowledged (with after_import: delete that would
// destroy unread mail); the session ends and the next one searches again
// — an expunged message is simply not found then.
Fetcher::Settled Fetcher::settle(const std::vector<std::uint64_t>& uids, const Batch& batch) {
  Settled out;
  for (std::uint64_t uid : uids) {
    if (batch.oversized.count(uid)) {
      out.skipped.push_back(uid);
      continue;
    }
    auto it = batch.results.find(uid);
    if (it == batch.results.end()) {
      out.stop = "no body for UID " + std::to_string(uid) + " (expunged meanwhile, or a server fault)";
      break;
    }
    const auto& r = it->second;
    if (r.kind == spool::AcceptResult::Kind::TemporaryFailure) {
      out.stop = "the spool refuses mail: " + r.reason + " (UID " + std::to_string(uid) + ")";
      break;  // keep the order: the mark never passes a message not yet safe
    }
    log::info("imap.message", {{"mailbox", s_.name}, {"uid", std::to_string(uid)}, {"spool_id", r.id},
                               {"result", r.kind == spool::AcceptResult::Kind::Accepted ? "queued" : "duplicate"}});
    if (r.kind == spool::AcceptResult::Kind::Accepted) {
      metrics::Registry::global().add("mailgate_imap_messages_imported_total",
                                      "Messages an IMAP mailbox added to the spool (duplicates not counted).",
                                      {{"mailbox", s_.name}});
      if (on_accepted) on_accepted(r.id);
    }
    out.imported.push_back(uid);
  }
  return out;
}

awaitable<void> Fetcher::conclude(Connection& c, const Settled& settled, const Batch& batch) {
  failpoint("imap_after_spool_commit");
  if (!settled.imported.empty()) {
    const std::string imported_set = uid_set(settled.imported);
    co_await acknowledge(c, imported_set);
  }
  if (!settled.skipped.empty()) co_await set_aside(c, settled.skipped, batch);
  // Only now: a crash or a dropped connection before this point fetches
  // the messages again, and the spool recognises them.
  const std::uint64_t top = std::max(settled.imported.empty() ? 0 : settled.imported.back(),
                                     settled.skipped.empty() ? 0 : settled.skipped.back());
  last_uid_ = std::max(last_uid_, top);
  marks_->set_mark(s_.name, {uidvalidity_, last_uid_});
  imported_ = true;
  note_progress(settled.imported.size() + settled.skipped.size());
}

// Oversized messages: logged, recorded, and moved to oversized_folder when set.
awaitable<void> Fetcher::set_aside(Connection& c, const std::vector<std::uint64_t>& skipped, const Batch& batch) {
  const std::string action = s_.oversized_folder.empty() ? "kept" : "moved:" + s_.oversized_folder;
  for (std::uint64_t uid : skipped) {
    const std::uint64_t size = batch.oversized.at(uid);
    log::warn("imap.message_too_large", {{"mailbox", s_.name}, {"uid", std::to_string(uid)},
                                         {"size", std::to_string(size)},
                                         {"limit", std::to_string(s_.max_message_size)}, {"action", action}});
    marks_->record_skip(s_.name, {uidvalidity_, uid, size, "larger than max_message_size"});
  }
  if (s_.oversized_folder.empty()) co_return;
  const std::string skipped_set = uid_set(skipped);
  Tagged r = co_await move(c, skipped_set, s_.oversized_folder);
  if (!r.ok())
    log::warn("imap.oversized_move_failed", {{"mailbox", s_.name}, {"uids", skipped_set},
                                             {"error", r.response.text},
                                             {"note", "skipped and recorded; they stay in the folder"}});
}

awaitable<Tagged> Fetcher::expunge(Connection& c, const std::string& set) {
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
  const std::string text = "UID EXPUNGE " + set;
  co_return co_await c.command(text);
}

awaitable<Tagged> Fetcher::move(Connection& c, const std::string& set, const std::string& folder) {
  const bool has_move = c.has("MOVE");
  const std::string cmd = (has_move ? "UID MOVE " : "UID COPY ") + set + " " + quoted(folder);
  Tagged r = co_await c.command(cmd);
  if (!r.ok() && has_code(r, "TRYCREATE")) {
    const std::string create = "CREATE " + quoted(folder);
    Tagged created = co_await c.command(create);
    log::info("imap.folder_created", {{"mailbox", s_.name}, {"folder", folder},
                                      {"result", created.ok() ? "ok" : created.response.text}});
    r = co_await c.command(cmd);
  }
  if (r.ok() && !has_move) r = co_await expunge(c, set);
  co_return r;
}

// after_import, for messages already durable in the spool. A refusal here
// is logged and does not undo the import: a later re-fetch is recognised. A
// dropped connection throws before the mark moves: the next session
// fetches them again (duplicates in the spool) and acknowledges then.
awaitable<void> Fetcher::acknowledge(Connection& c, const std::string& set) {
  Tagged r;
  switch (s_.after_import) {
    case AfterImport::Seen: {
      const std::string store = "UID STORE " + set + " +FLAGS.SILENT (\\Seen)";
      r = co_await c.command(store);
      break;
    }
    case AfterImport::Delete:
      r = co_await expunge(c, set);
      break;
    case AfterImport::Move:
      r = co_await move(c, set, s_.move_to);
      break;
  }
  if (!r.ok())
    log::warn("imap.after_import_failed", {{"mailbox", s_.name}, {"uids", set}, {"error", r.response.text},
                                           {"note", "the messages are imported; they stay in the folder"}});
}

}  // namespace mailgate::imap
