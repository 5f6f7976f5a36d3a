// The spool: mailgate's durable state (design.md "Spool"). Raw messages are
// files — written to tmp/, fsync'd, renamed into queue/, the directory
// fsync'd — before anyone is told "accepted". Their progress through the
// processor, the seen-set that prevents a second ticket, and the user cache
// live in SQLite (WAL, synchronous=FULL). Several processes may open one
// spool (the daemon, `mailgate deliver`, `mailgate queue`).
//
// Threads: every method may be called from any thread (stop_committer once
// nothing more is handed to commit_async). All but commit_async share one database connection (in `serve`: the main
// io_context and the processing thread), serialised per statement and per
// transaction (src/db.hpp); commit_async hands the message to the
// committer thread, which has a connection of its own. Where each group
// below is called from in `serve` is said above it.
//
// Sources, one job each: intake.cpp (Incoming's bytes, capacity, commit and
// the group commit), committer.cpp (the committer thread), recovery.cpp
// (what a crash left), progress.cpp (the processor's records), thread_index.cpp
// (threading's records), user_cache.cpp, imap_marks.cpp, operator.cpp (queue
// commands, expiry, stats), files.cpp (directories and paths), db.cpp (schema).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailgate::spool {

struct SpoolLimits {
  std::uint64_t max_queue_bytes = 0;               // 0: unlimited; queued mail above it is refused (452)
  std::uint64_t min_free_bytes = 64 * 1024 * 1024;  // refuse new mail when the disk has less free
};

// held: kept, not posted, until `queue release` (held/). ignored: kept in
// done/ for policy.ignored_retention, `queue retry` makes it a ticket.
enum class State { Queued, Held, Done, Ignored, Failed };
std::string_view to_string(State s);  // queued, held, done, ignored, failed
std::optional<State> state_named(std::string_view name);

// What the message arrived with besides its bytes (design.md "Envelope").
// The source is passed to commit(); IMAP has no envelope: a message
// committed from an imap:NAME source without recipients takes them from its
// header (Delivered-To, else X-Original-To, else To and Cc).
struct Envelope {
  std::string mail_from;                // "" for the null sender <>
  std::vector<std::string> recipients;  // every accepted RCPT TO, in order
};
inline constexpr std::size_t kMaxEnvelopeRecipients = 100;  // kept per message (SMTP's max_recipients)
inline constexpr std::size_t kMaxAddressLength = 320;       // longer addresses are not kept

// What the decision step decided (design.md "Order of decisions"), recorded
// before anything is posted so a restart never decides again.
struct RecordedDecision {
  std::string action;         // ticket | ignore | hold
  std::string route;          // the matched route's name, "" for none
  std::string reason;         // why, for every action but a plain ticket
  std::string kind;           // auto_reply, bounce, bulk, flood, route, …: metrics label
  std::string from_address;   // the address that would become the ticket's user
  std::string subject;        // the decoded title
  std::string ticket_fields;  // JSON object text: the fields the ticket is posted with
};

struct MessageRecord {
  std::string id;
  State state = State::Queued;
  std::string source;       // smtp, lmtp, deliver, imap:NAME
  std::string message_id;   // Message-ID without <>, "" when absent
  std::uint64_t size = 0;
  std::int64_t received_at = 0;      // UNIX seconds
  std::int64_t next_attempt_at = 0;  // UNIX seconds
  int attempts = 0;
  std::string last_error;
  std::string user_uuid;
  std::string ticket_id;
  bool ticket_post_started = false;  // a POST /tickets was sent and not yet recorded
  std::int64_t ticket_post_started_at = 0;  // UNIX seconds: when the first POST /tickets began (0: never)
  std::string ticket_full_uuid;      // the ticket's reference people see (ticket_id: the API's id, for paths)
  std::string outcome;               // "ticket 1234", "reply 55 on ticket 7 (by references)", "ignored: …", "failed: …"
  std::string mail_from;             // the envelope (design.md "Envelope")
  std::vector<std::string> recipients;
  // The ingest handed an envelope in (SMTP, LMTP, deliver). False for mail
  // spooled before envelopes were kept, recovered orphans, and tools that
  // commit bare bytes: then "" in mail_from is unknown, not the null sender.
  bool envelope_kept = false;
  RecordedDecision decision;         // decision.action "": not decided yet
  std::int64_t decided_at = 0;       // UNIX seconds
  bool person_decided = false;       // released or retried by a person: policy and flood skipped
  // Threading (thread_index.cpp). A message that joined a ticket keeps it
  // here, never in ticket_id: ticket_id means "this message created it".
  std::string joined_ticket;         // stored form; "" unless it joins (or joined) a ticket as a reply
  std::string thread_by;             // "references" or "subject" when joined_ticket is set
  std::string reply_id;              // the reply it posted, stored form
  std::int64_t reply_post_started_at = 0;  // UNIX seconds: a reply POST was sent (0: never)
};

// The thread index: a Message-ID that created or joined a ticket → that
// ticket and its creator. Kept for threading.remember, apart from
// done_retention (thread_index.cpp).
struct ThreadEntry {
  std::string ticket_id;         // stored form
  std::string ticket_full_uuid;  // "" when unknown
  std::string creator_address;   // lower-case; "" when unknown
  std::string creator_user;      // stored form; "" when unknown
  std::int64_t at = 0;           // UNIX seconds the row was written
};

struct MediaRecord {
  std::string ref;   // media-N of the draft
  std::string uuid;  // the API's id
  std::int64_t uploaded_at = 0;
};

// Why the spool refuses mail for now, as a value the ingest code can switch
// on: storage (SMTP 452 4.3.1) or anything else (451 4.3.0).
enum class Refusal { None, DiskFull, QueueFull, Temporary };

struct AcceptResult {
  enum class Kind { Accepted, Duplicate, TemporaryFailure } kind;
  std::string id;      // the spool id (Accepted) or the earlier message's (Duplicate)
  std::string reason;  // for TemporaryFailure: why, for the SMTP reply and the log
  Refusal refusal = Refusal::None;  // for TemporaryFailure: which kind of why
};

// check_capacity's answer with its kind.
struct Shortage {
  Refusal refusal = Refusal::Temporary;
  std::string reason;
};

class Spool;
namespace detail {
struct Db;  // the SQLite connection (src/db.hpp)
}  // namespace detail

// One message being received. Bytes go straight to a file in tmp/; nothing
// is visible to the processor until Spool::commit. Used by one thread at a
// time (the receiving session's), then handed to commit or commit_async.
class Incoming {
 public:
  ~Incoming();
  Incoming(Incoming&&) noexcept;
  Incoming& operator=(Incoming&&) = delete;
  Incoming(const Incoming&) = delete;

  // False after a write error (disk full) or a limit; later writes are
  // ignored and commit() reports the reason.
  bool write(std::string_view bytes);
  std::uint64_t size() const { return size_; }
  const std::string& id() const { return id_; }
  const std::string& error() const { return error_; }
  // Kept with the message at commit (SMTP/LMTP: MAIL FROM and every RCPT TO).
  void set_envelope(Envelope envelope) { envelope_ = std::move(envelope); }

 private:
  friend class Spool;
  Incoming(Spool& spool, std::string id, std::string path, int fd);
  bool flush();
  void discard();
  std::string sha256_hex();  // of every byte written (for the seen-set)

  Spool* spool_;
  std::string id_, path_, error_;
  Refusal error_refusal_ = Refusal::Temporary;  // what error_ means for the sender
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::string buffer_;
  std::string header_;  // the first bytes, to find Message-ID
  std::optional<Envelope> envelope_;
  struct Hash;
  std::unique_ptr<Hash> hash_;
};

class Spool {
 public:
  // Opens or creates the spool under `dir`; recovers files a crash left
  // between rename and database commit. Throws std::runtime_error when the
  // directory or database cannot be used (a start-up error).
  static std::unique_ptr<Spool> open(const std::string& dir, SpoolLimits limits = {});
  ~Spool();

  // ---- ingest (intake.cpp, committer.cpp) ----
  // Called by the ingest's thread (SMTP and IMAP: the main io_context;
  // `deliver`: its only thread). commit_async's `done` runs on the committer.
  // May already refuse (disk nearly full, queue over its limit).
  std::optional<std::string> check_capacity(std::uint64_t expected_size = 0);  // capacity()'s reason
  std::optional<Shortage> capacity(std::uint64_t expected_size = 0);
  Incoming begin();
  // Makes the message durable and queued, or recognises it as one already
  // seen (same Message-ID, or same bytes when it has none): then nothing is
  // queued and the answer is still "accepted" so the sender stops retrying.
  // Blocks for the disk syncs: for `deliver` and tests.
  AcceptResult commit(Incoming&& message, const std::string& source);
  // The same, as a group commit on the spool's committer thread (started on
  // first use): every message handed in while a batch is being synced joins
  // the next batch. `done` runs on the committer thread; the caller posts it
  // back to its own executor.
  void commit_async(Incoming&& message, std::string source, std::function<void(AcceptResult)> done);
  // Settles everything handed to commit_async and joins the committer; done
  // by the destructor too, but a daemon calls it while its executor is alive.
  void stop_committer();
  AcceptResult accept(std::string_view raw, const std::string& source);  // begin+write+commit

  // ---- processor (progress.cpp, user_cache.cpp) ----
  // Called by the processor's thread (in `serve`: the processing thread).
  std::vector<MessageRecord> due(std::int64_t now, std::size_t limit);
  std::optional<MessageRecord> get(const std::string& id);
  std::string read_raw(const std::string& id);  // throws if the file is gone
  void set_user(const std::string& id, const std::string& uuid);
  std::vector<MediaRecord> media(const std::string& id);
  void set_media(const std::string& id, const MediaRecord& m);
  // Sets ticket_post_started; ticket_post_started_at only the first time.
  void mark_ticket_post_started(const std::string& id);
  void set_ticket(const std::string& id, const std::string& ticket_id,
                  const std::string& full_uuid = "");                       // → done/
  // The message that recorded this ticket id, if any (a ticket found by
  // lookup is adopted only when no other message has it).
  std::optional<std::string> message_with_ticket(const std::string& ticket_id);
  void finish(const std::string& id, const std::string& outcome);            // → done/ (dry-run)
  // One transaction: the decision's fields, and for hold → held/, for
  // ignore → done/ in state ignored. A ticket stays queued.
  void record_decision(const std::string& id, const RecordedDecision& decision);
  // Messages decided "ticket" for this user address since `since`, other
  // than `except_id` (policy.flood counts decisions, so in-flight ones count).
  int count_ticket_decisions(const std::string& from_address, std::int64_t since, const std::string& except_id);
  // Where dry-run mode writes the ticket request of this message.
  std::string dry_run_path(const std::string& id) const;
  void defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error);
  void fail(const std::string& id, const std::string& reason);               // → failed/ + .reason
  std::optional<std::string> cached_user(const std::string& address);
  void cache_user(const std::string& address, const std::string& uuid);
  void forget_user(const std::string& address);
  // The API no longer knows the user or media this message recorded: drop
  // them (and the unanswered-POST flag: the API refused that POST).
  void forget_references(const std::string& id, bool user, bool media);

  // ---- threading (thread_index.cpp) ----
  // Called by the processor's thread; forget_threads_before by the main
  // io_context's expiry timer.
  // Message-ID (without <>; compared case-insensitively) → its ticket.
  void remember_thread(const std::string& message_id, const ThreadEntry& entry);
  std::optional<ThreadEntry> thread_of(const std::string& message_id);
  // Any index row of this ticket (its creator, for a subject match).
  std::optional<ThreadEntry> thread_of_ticket(const std::string& ticket_id);
  // Drops index rows written before `cutoff` (UNIX seconds); returns how many.
  std::size_t forget_threads_before(std::int64_t cutoff);
  // The first of `message_ids` that names a message still queued (waiting or
  // being processed) that arrived before `spool_id`, if any: a reply waits
  // for it. Failed and done (ignored, too) messages do not block.
  std::optional<std::string> queued_parent(const std::vector<std::string>& message_ids, const std::string& spool_id);
  // Not due before `next_attempt_at`, without counting an attempt (waiting
  // for a parent is not a failure).
  void postpone(const std::string& id, std::int64_t next_attempt_at, const std::string& why);
  // The message joins `ticket_id` as a reply: recorded before any call for it.
  void set_thread(const std::string& id, const std::string& ticket_id, const std::string& by);
  // It will not join after all (404, closed with new_ticket): back to a ticket.
  void clear_thread(const std::string& id);
  // Sets reply_post_started_at (only the first time): a reply POST is about to be sent.
  void mark_reply_post_started(const std::string& id);
  // The reply is posted: one transaction records its id, the outcome (→
  // done/) and the message's index row.
  void set_reply(const std::string& id, const std::string& reply_id, const std::string& message_id,
                 const ThreadEntry& entry);
  // Adds why to a finished message's outcome: "ticket 12 (new ticket: sender not the ticket's creator)".
  void note_outcome(const std::string& id, const std::string& why);
  // The message that recorded this reply id, if any.
  std::optional<std::string> message_with_reply(const std::string& reply_id);

  // ---- IMAP ingest: per mailbox, how far it has imported (imap_marks.cpp) ----
  // Called by the fetchers' thread (the main io_context).
  struct ImapMark {
    std::uint64_t uidvalidity = 0;  // 0: never selected
    std::uint64_t last_uid = 0;     // every UID up to this one is in the spool
  };
  ImapMark imap_mark(const std::string& mailbox);
  void set_imap_mark(const std::string& mailbox, const ImapMark& mark);
  // A message the fetcher skipped (larger than the mailbox's limit): the
  // mark passes it, this row says which one it was (table imap_skipped).
  void record_imap_skip(const std::string& mailbox, std::uint64_t uidvalidity, std::uint64_t uid, std::uint64_t size,
                        const std::string& reason);

  // ---- monitoring (/metrics, /healthz; operator.cpp) ----
  // Called by the metrics server's thread (the main io_context).
  struct Stats {
    struct Count {
      State state;
      std::string source;
      std::uint64_t messages = 0;
    };
    std::vector<Count> counts;           // by state and source
    std::uint64_t queued_bytes = 0;
    std::uint64_t deferred = 0;          // queued, with at least one failed attempt
    std::int64_t oldest_queued_at = 0;   // UNIX seconds, 0 when nothing is queued
    std::vector<std::pair<std::string, std::uint64_t>> held_by_kind;  // held messages by decision kind
  };
  Stats stats();

  // ---- operator (operator.cpp) ----
  // Called by `mailgate queue` (its own process), expire_* by `serve`'s
  // main io_context.
  std::vector<MessageRecord> list(std::optional<State> state = std::nullopt);
  // failed or deferred → queued now; ignored → queued as a person's
  // decision (decided again, policy and flood skipped). False otherwise.
  bool retry(const std::string& id);
  // held → queued as a person's decision. False when not held.
  bool release(const std::string& id);
  bool drop(const std::string& id);   // removed entirely (the seen key stays)
  // Removes done/ files older than `retention_seconds`; returns how many.
  std::size_t expire_done(std::int64_t now, std::int64_t retention_seconds);
  // The same for ignored mail (policy.ignored_retention).
  std::size_t expire_ignored(std::int64_t now, std::int64_t retention_seconds);

  // ---- files (files.cpp): any thread; paths only, no database ----
  const std::string& dir() const { return dir_; }
  std::string path_of(const std::string& id, State state) const;
  // Where the file is: path_of(id, state), or another directory when a crash
  // lost the (unsynced) move that followed a state change.
  std::string existing_path(const std::string& id, State state) const;

 private:
  friend class Incoming;
  using Db = detail::Db;
  Spool() = default;
  struct Committer;
  struct PendingCommit {
    Incoming in;
    std::string source;
    std::function<void(AcceptResult)> done;
    AcceptResult result{AcceptResult::Kind::TemporaryFailure, "", "not committed", Refusal::Temporary};
    bool settled = false;
  };
  // The group commit's steps (intake.cpp), on the thread that owns `db`.
  void commit_batch(Db& db, std::vector<PendingCommit>& batch);
  static std::vector<PendingCommit*> sync_files(std::vector<PendingCommit>& batch);
  std::vector<PendingCommit*> enter_queue(Db& db, const std::vector<PendingCommit*>& live);
  bool enqueue(Db& db, PendingCommit& p, std::uint64_t& queued_so_far, std::int64_t now);
  static void refuse(PendingCommit& p, std::string reason, Refusal refusal = Refusal::Temporary);
  void run_committer();  // committer.cpp: the committer thread's loop
  // recovery.cpp, from open(): before any other thread exists.
  void recover();
  void adopt_orphan(const std::string& id);
  std::vector<std::string> queue_orphans();
  void move_file(const std::string& id, State from, State to);
  std::string reason_path(const std::string& id) const;  // failed/ID.reason
  bool requeue_decided_by_person(const std::string& id, State from);
  std::size_t expire_files(State state, std::int64_t now, std::int64_t retention_seconds);

  std::string dir_;
  SpoolLimits limits_;
  // The connection of every method but commit_async, shared by the threads
  // that call them (safe: see src/db.hpp). The committer has its own.
  std::unique_ptr<Db> db_;
  std::mutex committer_start_;
  std::unique_ptr<Committer> committer_;
};

// A read-only look at a spool's thread index, for `preview`: never creates
// or changes anything (thread_index.cpp).
class ThreadIndexReader {
 public:
  // Null when `spool_dir` has no spool database (or it cannot be read).
  static std::unique_ptr<ThreadIndexReader> open(const std::string& spool_dir);
  ~ThreadIndexReader();
  std::optional<ThreadEntry> thread_of(const std::string& message_id) const;
  std::optional<ThreadEntry> thread_of_ticket(const std::string& ticket_id) const;

 private:
  ThreadIndexReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A new spool id: sortable by time, unique across processes.
std::string new_spool_id();

}  // namespace mailgate::spool
