// One IMAP mailbox as an ingest: log in, import every message above the
// last imported UID into the spool, then apply `after_import`, then IDLE
// (or poll) and repeat; reconnect with backoff after any failure.
//
// Exactly once: a message is acknowledged to the server (\Seen, MOVE,
// delete) only after the spool's fsync; the UID mark is advanced after
// that. A crash in between re-fetches the message, and the spool's seen-set
// (Message-ID, or the bytes' SHA-256) recognises it. Candidates are UIDs
// above the mark, never "unseen" messages: a person reading the mailbox in
// another client first does not make mail disappear. The mark is kept in a
// MarkStore (the daemon's: the spool's tables).
//
// Threads: run(), stop() and on_accepted on the fetcher's executor (the
// ingest thread); the spool's committer thread only through async_commit.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "mailgate/imap/connection.hpp"
#include "mailgate/imap/mark_store.hpp"
#include "mailgate/net/asio.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::imap {

inline constexpr std::chrono::seconds kDefaultProgressInterval{10};

// The configuration's choices themselves (choices.hpp), not copies.
using AuthMethod = config::ImapAuth;
using AfterImport = config::AfterImport;

struct MailboxSettings {
  std::string name;  // for logs and the spool's source "imap:NAME"
  std::string host;
  std::uint16_t port = 993;
  Security security = Security::Tls;
  std::string ca_file;  // extra trust anchor (private CA)
  std::string username;
  std::string password;
  AuthMethod auth = AuthMethod::Auto;
  std::string token_file;     // XOAUTH2: access token, re-read at every login
  std::string token_command;  // XOAUTH2: or printed by this command
  std::string folder = "INBOX";
  AfterImport after_import = AfterImport::Seen;
  std::string move_to;
  bool idle = true;
  std::chrono::seconds poll_interval{60};
  std::chrono::seconds idle_restart{25 * 60};  // RFC 2177: servers may drop an IDLE after 30 min
  std::size_t batch = 50;                      // messages per UID FETCH
  // Larger messages are skipped (RFC822.SIZE, or a literal that turns out
  // larger): logged, recorded in the spool (imap_skipped) and left on the
  // server, or moved to `oversized_folder` when set; the mark passes them.
  std::uint64_t max_message_size = 64ull * 1024 * 1024;
  std::string oversized_folder;
  // UIDs above the mark taken from one SEARCH (the lowest ones); the rest
  // are searched for again once these are imported.
  std::size_t max_search_uids = 10'000;
  // A backlog (the first import of a big mailbox) logs imap.progress this
  // often, and once more when it is all imported.
  std::chrono::seconds progress_interval{kDefaultProgressInterval};
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{300'000};
  ConnectionLimits limits;
};

class Fetcher {
 public:
  // Messages go into `spool`; the mark into `marks`.
  Fetcher(net::asio::any_io_executor ex, spool::Spool& spool, std::unique_ptr<MarkStore> marks,
          MailboxSettings settings);
  ~Fetcher();
  // Runs until stop().
  net::asio::awaitable<void> run();
  void stop();
  // Called with the spool id of each newly queued message.
  std::function<void(const std::string&)> on_accepted;

 private:
  struct Batch;    // what one UID FETCH batch learnt, UID by UID
  struct Settled;  // the batch's UIDs the mark may pass
  struct Claimed;  // a body ready for the spool
  struct BodySink;  // streams BODY[] literals into spool files
  net::asio::awaitable<void> session();
  net::asio::awaitable<void> log_in(Connection& c);
  // SELECT, then the mark checked against the folder's UIDVALIDITY.
  net::asio::awaitable<void> select_folder(Connection& c);
  void restore_mark(std::uint64_t uidvalidity);
  // IDLE (or poll, then NOOP) until there may be news; false: the IDLE
  // reached its restart time (the session ends, run() reconnects).
  net::asio::awaitable<bool> wait_for_news(Connection& c);
  net::asio::awaitable<void> import_new(Connection& c);
  // The lowest max_search_uids UIDs above the mark; `more`: there were others.
  net::asio::awaitable<std::vector<std::uint64_t>> search(Connection& c, bool& more);
  net::asio::awaitable<void> fetch_batch(Connection& c, const std::vector<std::uint64_t>& uids);
  // RFC822.SIZE of the batch: the oversized go to batch.oversized, the others to batch.to_fetch.
  net::asio::awaitable<void> sort_by_size(Connection& c, const std::vector<std::uint64_t>& uids, Batch& batch);
  // One UID FETCH of the bodies, each committed before the next response.
  net::asio::awaitable<void> fetch_bodies(Connection& c, Batch& batch);
  // The body a FETCH response carries, if it is one to import.
  std::optional<Claimed> claim_body(const Response& r, BodySink& sink, Batch& batch);
  // The longest settled run of `uids` from the lowest; logs and counts each import.
  Settled settle(const std::vector<std::uint64_t>& uids, const Batch& batch);
  // Acknowledges the imported, records (and maybe moves) the skipped, then moves the mark.
  net::asio::awaitable<void> conclude(Connection& c, const Settled& settled, const Batch& batch);
  net::asio::awaitable<void> set_aside(Connection& c, const std::vector<std::uint64_t>& skipped, const Batch& batch);  net::asio::awaitable<void> acknowledge(Connection& c, const std::string& uid_set);
  // UID MOVE (or COPY + delete) into `folder`, creating it when asked to.
  net::asio::awaitable<Tagged> move(Connection& c, const std::string& set, const std::string& folder);
  net::asio::awaitable<Tagged> expunge(Connection& c, const std::string& set);
  net::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  // Progress of the import in progress: `settled` more messages are done
  // (imported, duplicates, skipped); logs imap.progress when due, and sets
  // the backlog gauge.
  void note_progress(std::size_t settled);
  void finish_progress();

  net::asio::any_io_executor ex_;
  spool::Spool& spool_;
  std::unique_ptr<MarkStore> marks_;
  MailboxSettings s_;
  net::ssl::context tls_;
  std::string source_;
  Connection* current_ = nullptr;
  net::asio::steady_timer sleeper_;
  bool stopping_ = false;
  bool imported_ = false;  // the current session advanced the mark: backoff starts again
  std::uint64_t uidvalidity_ = 0;
  std::uint64_t last_uid_ = 0;
  // The current import (import_new): messages above the mark when it
  // began or were found since, and how many of them are settled.
  struct Progress {
    std::uint64_t total = 0;
    std::uint64_t done = 0;
    std::uint64_t remaining = 0;  // above the mark, by the last SEARCH
    std::chrono::steady_clock::time_point started, last_log;
    bool logged = false;  // an imap.progress line was written for this import
  } progress_;
  std::mt19937_64 rng_{std::random_device{}()};
};

// check-config --connect: connects, logs in as the fetcher would, EXAMINEs
// (a read-only SELECT: flags and \Recent stay as they are) the folder and
// logs out. Returns the folder's message count; throws ImapError.
net::asio::awaitable<std::uint64_t> probe_mailbox(net::asio::any_io_executor ex, const MailboxSettings& settings);

// "1:3,5,7:8" from sorted UIDs.
std::string uid_set(const std::vector<std::uint64_t>& sorted_uids);

}  // namespace mailgate::imap
