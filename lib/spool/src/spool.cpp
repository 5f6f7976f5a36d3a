// Spool: files for bytes, SQLite for state. Every state change that matters
// is one SQLite transaction (fsync'd by SQLite) plus, where a file moves,
// rename(2) and an fsync of both directories.
#include "mailgate/spool/spool.hpp"

#include "db.hpp"
#include "mailgate/text/ascii.hpp"
#include "mailgate/text/encoding.hpp"
#include "mailgate/text/file.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>
#include <dirent.h>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace mailgate::spool {
namespace {

constexpr std::size_t kWriteBuffer = 256 * 1024;
constexpr std::size_t kHeaderScan = 64 * 1024;  // Message-ID must be in the first 64 KiB

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open directory " + dir + ": " + std::strerror(errno));
  int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) throw std::runtime_error("cannot fsync directory " + dir + ": " + std::strerror(errno));
}

void make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
}

const char* dir_name(State s) {
  switch (s) {
    case State::Queued: return "queue";
    case State::Held: return "held";
    case State::Done: return "done";
    case State::Ignored: return "done";  // design.md: ignored mail is kept in done/
    case State::Failed: return "failed";
  }
  return "queue";
}

constexpr State kAllStates[] = {State::Queued, State::Held, State::Done, State::Ignored, State::Failed};


// Every field called `name` (lower-case, with the colon) in a header
// block, unfolded; at most `max_fields` of them.
std::vector<std::string> header_fields(std::string_view head, std::string_view name, std::size_t max_fields) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < head.size() && out.size() < max_fields) {
    std::size_t eol = head.find('\n', pos);
    std::string_view line = head.substr(pos, eol == std::string_view::npos ? head.size() - pos : eol - pos);
    if (line.empty() || line == "\r") break;  // end of header
    std::size_t next = eol == std::string_view::npos ? head.size() : eol + 1;
    if (line.size() > name.size() && text::ascii_lower(std::string(line.substr(0, name.size()))) == name) {
      std::string value(line.substr(name.size()));
      while (next < head.size() && (head[next] == ' ' || head[next] == '\t')) {
        std::size_t e = head.find('\n', next);
        value += std::string(head.substr(next, (e == std::string_view::npos ? head.size() : e) - next));
        next = e == std::string_view::npos ? head.size() : e + 1;
      }
      out.push_back(std::move(value));
    }
    pos = next;
  }
  return out;
}

// The addr-specs of an address-list value: what is in <>, else the bare
// word with an @; quoted display names and comments skipped, group names
// dropped. Lower-case; nothing with a control character.
void collect_addresses(std::string_view value, std::vector<std::string>& out) {
  std::string current, bracketed;
  bool in_quotes = false, in_angle = false, have_angle = false;
  int comment_depth = 0;
  auto flush = [&] {
    std::string a = have_angle ? bracketed : current;
    std::string trimmed;
    for (char c : a)
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') trimmed.push_back(c);
    const bool sane = std::none_of(trimmed.begin(), trimmed.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (sane && trimmed.find('@') != std::string::npos && trimmed.size() <= kMaxAddressLength &&
        out.size() < kMaxEnvelopeRecipients)
      out.push_back(text::ascii_lower(trimmed));
    current.clear();
    bracketed.clear();
    have_angle = false;
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (in_quotes) {
      if (c == '\\') ++i;
      else if (c == '"') in_quotes = false;
      continue;
    }
    if (comment_depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++comment_depth;
      else if (c == ')') --comment_depth;
      continue;
    }
    if (in_angle) {
      if (c == '>') in_angle = false;
      else bracketed.push_back(c);
      continue;
    }
    switch (c) {
      case '"': in_quotes = true; break;
      case '(': comment_depth = 1; break;
      case '<': in_angle = have_angle = true; bracketed.clear(); break;
      case ':': current.clear(); break;  // a group's name
      case ',': case ';': flush(); break;
      default: current.push_back(c);
    }
  }
  flush();
}

// The recipients of mail that came without an envelope (IMAP): the
// Delivered-To fields, else X-Original-To, else To and Cc.
std::vector<std::string> recipients_from_header(std::string_view head) {
  std::vector<std::string> out;
  for (const auto& names : std::vector<std::vector<std::string_view>>{
           {"delivered-to:"}, {"x-original-to:"}, {"to:", "cc:"}}) {
    for (auto name : names)
      for (const auto& value : header_fields(head, name, kMaxEnvelopeRecipients)) collect_addresses(value, out);
    if (!out.empty()) break;
  }
  std::vector<std::string> unique;
  for (auto& a : out)
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
  return unique;
}

// The envelope as stored: IMAP's from the header, addresses with a line
// break or over the length limit dropped, at most kMaxEnvelopeRecipients.
Envelope stored_envelope(const std::optional<Envelope>& handed_in, const std::string& source, std::string_view head) {
  const Envelope given = handed_in.value_or(Envelope{});
  auto clean = [](const std::string& a) { return a.size() <= kMaxAddressLength && a.find_first_of("\r\n") == std::string::npos; };
  Envelope e;
  if (clean(given.mail_from)) e.mail_from = given.mail_from;
  for (const auto& r : given.recipients)
    if (clean(r) && e.recipients.size() < kMaxEnvelopeRecipients) e.recipients.push_back(r);
  if (e.recipients.empty() && source.rfind("imap:", 0) == 0) e.recipients = recipients_from_header(head);
  return e;
}

// Message-ID from a header block: first field of that name, unfolded,
// angle brackets removed; "" when absent.
std::string find_message_id(std::string_view head) {
  std::size_t pos = 0;
  while (pos < head.size()) {
    std::size_t eol = head.find('\n', pos);
    std::string_view line = head.substr(pos, eol == std::string_view::npos ? head.size() - pos : eol - pos);
    if (line.empty() || line == "\r") break;  // end of header
    if (line.size() > 11 && text::ascii_lower(std::string(line.substr(0, 11))) == "message-id:") {
      std::string value(line.substr(11));
      // folded continuation lines
      std::size_t next = eol == std::string_view::npos ? head.size() : eol + 1;
      while (next < head.size() && (head[next] == ' ' || head[next] == '\t')) {
        std::size_t e = head.find('\n', next);
        value += std::string(head.substr(next, (e == std::string_view::npos ? head.size() : e) - next));
        next = e == std::string_view::npos ? head.size() : e + 1;
      }
      std::string id;
      for (char c : value)
        if (c != '<' && c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n') id.push_back(c);
      return id;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return "";
}

}  // namespace

State state_from(std::string_view s) { return state_named(s).value_or(State::Queued); }

std::string_view to_string(State s) {
  switch (s) {
    case State::Queued: return "queued";
    case State::Held: return "held";
    case State::Done: return "done";
    case State::Ignored: return "ignored";
    case State::Failed: return "failed";
  }
  return "queued";
}

std::optional<State> state_named(std::string_view name) {
  for (State s : kAllStates)
    if (to_string(s) == name) return s;
  return std::nullopt;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : "\n") + i;
  return out;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = std::min(text.find('\n', pos), text.size());
    out.emplace_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return out;
}

std::string new_spool_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<std::uint64_t>(::getpid())};
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
  char rand[17];
  std::snprintf(rand, sizeof rand, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(stamp) + "-" + std::string(rand, 10);
}

// ---- Incoming -------------------------------------------------------------------

struct Incoming::Hash {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Hash() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Hash() { EVP_MD_CTX_free(ctx); }
  std::string hex() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    return text::hex_lower(std::string_view(reinterpret_cast<const char*>(d), n));
  }
};

Incoming::Incoming(Spool& spool, std::string id, std::string path, int fd)
    : spool_(&spool), id_(std::move(id)), path_(std::move(path)), fd_(fd), hash_(std::make_unique<Hash>()) {
  buffer_.reserve(kWriteBuffer);
}

Incoming::Incoming(Incoming&& o) noexcept
    : spool_(o.spool_), id_(std::move(o.id_)), path_(std::move(o.path_)), error_(std::move(o.error_)),
      error_refusal_(o.error_refusal_), fd_(o.fd_),
      size_(o.size_), buffer_(std::move(o.buffer_)), header_(std::move(o.header_)), envelope_(std::move(o.envelope_)),
      hash_(std::move(o.hash_)) {
  o.fd_ = -1;
  o.path_.clear();
}

Incoming::~Incoming() { discard(); }

void Incoming::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

bool Incoming::flush() {
  std::size_t off = 0;
  while (off < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const bool full = errno == ENOSPC || errno == EDQUOT;
      error_ = full ? "spool disk full" : std::string("spool write failed: ") + std::strerror(errno);
      error_refusal_ = full ? Refusal::DiskFull : Refusal::Temporary;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  buffer_.clear();
  return true;
}

bool Incoming::write(std::string_view bytes) {
  if (!error_.empty() || fd_ < 0) return false;
  if (header_.size() < kHeaderScan) header_.append(bytes.substr(0, kHeaderScan - header_.size()));
  EVP_DigestUpdate(hash_->ctx, bytes.data(), bytes.size());
  size_ += bytes.size();
  if (buffer_.size() + bytes.size() > kWriteBuffer) {
    if (!flush()) return false;
    if (bytes.size() > kWriteBuffer) {
      buffer_.assign(bytes);
      return flush();
    }
  }
  buffer_.append(bytes);
  return true;
}

// ---- Spool ---------------------------------------------------------------------

std::unique_ptr<Spool::Db> Spool::open_db(const std::string& dir) {
  auto db = std::make_unique<Db>();
  if (sqlite3_open_v2((dir + "/state.sqlite").c_str(), &db->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK)
    throw std::runtime_error("cannot open the spool database in " + dir);
  // The committer thread, the processor and other mailgate processes share
  // the database. SQLite's own busy timeout sleeps in steps of up to 100 ms;
  // a write lock here is held for about one fsync, so poll finely instead.
  sqlite3_busy_handler(
      db->db,
      [](void*, int tries) -> int {
        constexpr int kMaxTries = 20'000;  // ~10 s at 0.5 ms
        if (tries >= kMaxTries) return 0;
        ::usleep(tries < 100 ? 100 : 500);
        return 1;
      },
      nullptr);
  db->exec("PRAGMA journal_mode=WAL");
  db->exec("PRAGMA synchronous=FULL");
  db->exec(
      "CREATE TABLE IF NOT EXISTS messages(id TEXT PRIMARY KEY, state TEXT NOT NULL, seen_key TEXT NOT NULL, "
      "source TEXT, message_id TEXT, size INTEGER, received_at INTEGER, next_attempt_at INTEGER, "
      "attempts INTEGER DEFAULT 0, last_error TEXT DEFAULT '', user_uuid TEXT DEFAULT '', ticket_id TEXT DEFAULT '', "
      "ticket_post_started INTEGER DEFAULT 0, outcome TEXT DEFAULT '', finished_at INTEGER DEFAULT 0);"
      "CREATE INDEX IF NOT EXISTS messages_due ON messages(state, next_attempt_at);"
      "CREATE TABLE IF NOT EXISTS seen(key TEXT PRIMARY KEY, message TEXT NOT NULL, at INTEGER);"
      "CREATE TABLE IF NOT EXISTS media(message TEXT, ref TEXT, uuid TEXT, uploaded_at INTEGER, PRIMARY KEY(message, ref));"
      "CREATE TABLE IF NOT EXISTS users(address TEXT PRIMARY KEY, uuid TEXT, at INTEGER);"
      "CREATE TABLE IF NOT EXISTS imap_marks(mailbox TEXT PRIMARY KEY, uidvalidity INTEGER, last_uid INTEGER);"
      "CREATE TABLE IF NOT EXISTS imap_skipped(mailbox TEXT, uidvalidity INTEGER, uid INTEGER, size INTEGER, "
      "reason TEXT, at INTEGER, PRIMARY KEY(mailbox, uidvalidity, uid));");
  // Rooms that keep their own records (thread index, envelope, …) create
  // their tables in their own source file, called from here.
  // Columns added since the first schema: spools made before get them here.
  for (const char* column : {"ticket_post_started_at INTEGER DEFAULT 0", "ticket_full_uuid TEXT DEFAULT ''",
                             "mail_from TEXT DEFAULT ''", "recipients TEXT DEFAULT ''", "decision TEXT DEFAULT ''",
                             "decision_route TEXT DEFAULT ''", "decision_reason TEXT DEFAULT ''",
                             "decision_kind TEXT DEFAULT ''", "decision_from TEXT DEFAULT ''",
                             "decision_subject TEXT DEFAULT ''", "decision_fields TEXT DEFAULT ''",
                             "decided_at INTEGER DEFAULT 0", "person_decided INTEGER DEFAULT 0",
                             "envelope_kept INTEGER DEFAULT 0",
                             "joined_ticket TEXT DEFAULT ''", "thread_by TEXT DEFAULT ''", "reply_id TEXT DEFAULT ''",
                             "reply_post_started_at INTEGER DEFAULT 0"}) {
    const std::string name = std::string(column).substr(0, std::string(column).find(' '));
    auto info = db->prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name=?");
    info.bind(1, name);
    if (!info.step()) db->exec(("ALTER TABLE messages ADD COLUMN " + std::string(column)).c_str());
  }
  create_thread_index(*db);
  // policy.flood counts a sender's recent ticket decisions.
  db->exec("CREATE INDEX IF NOT EXISTS messages_decided_from ON messages(decision_from, decided_at)");
  return db;
}

std::unique_ptr<Spool> Spool::open(const std::string& dir, SpoolLimits limits) {
  std::unique_ptr<Spool> s(new Spool());
  s->dir_ = dir;
  s->limits_ = limits;
  make_dir(dir);
  for (const char* sub : {"tmp", "queue", "held", "done", "failed", "dry-run"}) make_dir(dir + "/" + sub);
  s->db_ = open_db(dir);
  s->recover();
  return s;
}

Spool::~Spool() { stop_committer(); }

std::string Spool::path_of(const std::string& id, State state) const {
  return dir_ + "/" + dir_name(state) + "/" + id + ".eml";
}

std::optional<std::string> Spool::check_capacity(std::uint64_t expected_size) {
  auto s = capacity(expected_size);
  if (!s) return std::nullopt;
  return s->reason;
}

std::optional<Shortage> Spool::capacity(std::uint64_t expected_size) {
  struct statvfs v {};
  if (::statvfs(dir_.c_str(), &v) == 0) {
    std::uint64_t free_bytes = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
    if (free_bytes < limits_.min_free_bytes + expected_size) return Shortage{Refusal::DiskFull, "spool disk nearly full"};
  }
  if (limits_.max_queue_bytes > 0) {
    auto st = db_->prepare("SELECT COALESCE(SUM(size),0) FROM messages WHERE state='queued'");
    st.step();
    if (static_cast<std::uint64_t>(st.integer(0)) + expected_size > limits_.max_queue_bytes)
      return Shortage{Refusal::QueueFull, "spool queue full"};
  }
  return std::nullopt;
}

Incoming Spool::begin() {
  std::string id = new_spool_id();
  std::string path = dir_ + "/tmp/" + id + ".tmp";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const int open_errno = errno;
  Incoming in(*this, id, fd >= 0 ? path : "", fd);
  if (fd < 0) {
    in.error_refusal_ = open_errno == ENOSPC || open_errno == EDQUOT ? Refusal::DiskFull : Refusal::Temporary;
    in.error_ = std::string("cannot create a spool file: ") + std::strerror(open_errno);
  }
  return in;
}

// One batch of received messages made durable together — the group commit.
// The order is what makes "250" safe: file data on disk (fsync, or syncfs for
// a batch), the seen-set consulted, renames into queue/, one fsync of queue/,
// one SQLite transaction. A crash before COMMIT leaves files in queue/ without
// rows: never acknowledged, adopted by recover(). Three syncs per batch
// instead of three per message.
void Spool::commit_batch(Db& db, std::vector<PendingCommit>& batch) {
  auto temp_fail = [](PendingCommit& p, std::string reason, Refusal refusal = Refusal::Temporary) {
    p.in.discard();
    p.result = {AcceptResult::Kind::TemporaryFailure, p.in.id_, std::move(reason), refusal};
    p.settled = true;
  };
  std::vector<PendingCommit*> live;
  for (auto& p : batch) {
    if (!p.in.error_.empty() || !p.in.flush()) temp_fail(p, p.in.error_, p.in.error_refusal_);
    else live.push_back(&p);
  }
  if (live.empty()) return;
  // One message: fsync its file. Several: one syncfs writes them all (a
  // per-file fsync after it would still cost a synchronous inode write each).
  // syncfs reports write-back errors of the file system since Linux 5.8; an
  // error fails the whole batch, which the senders retry.
  const bool synced = live.size() == 1 ? ::fsync(live.front()->in.fd_) == 0 : ::syncfs(live.front()->in.fd_) == 0;
  const std::string sync_error = synced ? "" : std::string("spool fsync failed: ") + std::strerror(errno);
  for (auto* p : live) {
    ::close(p->in.fd_);
    p->in.fd_ = -1;
    if (!synced) temp_fail(*p, sync_error);
  }

  const std::int64_t now = now_unix();
  std::vector<PendingCommit*> queued;
  try {
    db.exec("BEGIN IMMEDIATE");
    std::uint64_t queued_bytes = 0;
    if (limits_.max_queue_bytes > 0) {
      auto st = db.prepare("SELECT COALESCE(SUM(size),0) FROM messages WHERE state='queued'");
      st.step();
      queued_bytes = static_cast<std::uint64_t>(st.integer(0));
    }
    for (auto* p : live) {
      if (p->settled) continue;
      const std::string message_id = find_message_id(p->in.header_);
      const std::string key = message_id.empty() ? "sha256:" + p->in.hash_->hex() : "mid:" + text::ascii_lower(message_id);
      auto seen = db.prepare("SELECT message FROM seen WHERE key=?");
      seen.bind(1, key);
      if (seen.step()) {  // seen before, or earlier in this batch
        p->result = {AcceptResult::Kind::Duplicate, seen.text(0), "", Refusal::None};
        p->in.discard();
        p->settled = true;
        continue;
      }
      if (limits_.max_queue_bytes > 0 && queued_bytes + p->in.size_ > limits_.max_queue_bytes) {
        temp_fail(*p, "spool queue full", Refusal::QueueFull);  // a copy of a queued mail is still welcome (above)
        continue;
      }
      queued_bytes += p->in.size_;
      if (::rename(p->in.path_.c_str(), path_of(p->in.id_, State::Queued).c_str()) != 0) {
        temp_fail(*p, std::string("spool rename failed: ") + std::strerror(errno));
        continue;
      }
      p->in.path_.clear();  // the file is no longer ours to delete
      const Envelope envelope = stored_envelope(p->in.envelope_, p->source, p->in.header_);
      auto ins = db.prepare(
          "INSERT INTO messages(id, state, seen_key, source, message_id, size, received_at, next_attempt_at, "
          "mail_from, recipients, envelope_kept) VALUES(?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      ins.bind(1, p->in.id_).bind(2, key).bind(3, p->source).bind(4, message_id)
          .bind(5, static_cast<std::int64_t>(p->in.size_)).bind(6, now).bind(7, now)
          .bind(8, envelope.mail_from).bind(9, join_lines(envelope.recipients))
          .bind(10, static_cast<std::int64_t>(p->in.envelope_.has_value()));
      ins.step();
      auto mark = db.prepare("INSERT INTO seen(key, message, at) VALUES(?, ?, ?)");
      mark.bind(1, key).bind(2, p->in.id_).bind(3, now);
      mark.step();
      queued.push_back(p);
    }
    if (!queued.empty()) fsync_dir(dir_ + "/queue");
    db.exec("COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(db.db, "ROLLBACK", nullptr, nullptr, nullptr);
    // Files already in queue/ are adopted by recover() at the next start, so
    // nothing is lost, but none of them may be acknowledged.
    for (auto* p : live)
      if (!p->settled || p->result.kind == AcceptResult::Kind::Duplicate)
        temp_fail(*p, std::string("spool database: ") + e.what());
    return;
  }
  for (auto* p : queued) {
    p->result = {AcceptResult::Kind::Accepted, p->in.id_, "", Refusal::None};
    p->settled = true;
  }
}

AcceptResult Spool::commit(Incoming&& in, const std::string& source) {
  std::vector<PendingCommit> one;
  one.push_back({std::move(in), source, {}});
  commit_batch(*db_, one);
  return one.front().result;
}

// The committer: one thread with its own database connection, taking every
// message waiting when it finishes the previous batch. Sessions never block
// the event loop on a disk sync.
struct Spool::Committer {
  static constexpr std::size_t kMaxBatch = 256;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<PendingCommit> waiting;
  bool stopping = false;
  std::unique_ptr<Db> db;
  std::thread thread;
};

void Spool::commit_async(Incoming&& in, std::string source, std::function<void(AcceptResult)> done) {
  {
    std::lock_guard lock(committer_start_);
    if (!committer_) {
      committer_ = std::make_unique<Committer>();
      committer_->db = open_db(dir_);
      committer_->thread = std::thread([this] { run_committer(); });
    }
  }
  {
    std::lock_guard lock(committer_->mutex);
    committer_->waiting.push_back({std::move(in), std::move(source), std::move(done)});
  }
  committer_->wake.notify_one();
}

void Spool::run_committer() {
  Committer& c = *committer_;
  for (;;) {
    std::vector<PendingCommit> batch;
    {
      std::unique_lock lock(c.mutex);
      c.wake.wait(lock, [&] { return c.stopping || !c.waiting.empty(); });
      if (c.waiting.empty()) return;  // stopping, and everything handed in is settled
      while (!c.waiting.empty() && batch.size() < Committer::kMaxBatch) {
        batch.push_back(std::move(c.waiting.front()));
        c.waiting.pop_front();
      }
    }
    commit_batch(*c.db, batch);
    for (auto& p : batch) p.done(std::move(p.result));
  }
}

void Spool::stop_committer() {
  if (!committer_) return;
  {
    std::lock_guard lock(committer_->mutex);
    committer_->stopping = true;
  }
  committer_->wake.notify_one();
  if (committer_->thread.joinable()) committer_->thread.join();
  committer_.reset();
}

AcceptResult Spool::accept(std::string_view raw, const std::string& source) {
  if (auto full = capacity(raw.size())) return {AcceptResult::Kind::TemporaryFailure, "", full->reason, full->refusal};
  Incoming in = begin();
  in.write(raw);
  return commit(std::move(in), source);
}

// Files a crash left in queue/ between rename and the database commit are
// adopted (they were never acknowledged, but keeping them loses nothing and
// the seen-set still stops a duplicate); tmp/ leftovers were never accepted.
void Spool::recover() {
  if (DIR* d = ::opendir((dir_ + "/tmp").c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ::unlink((dir_ + "/tmp/" + e->d_name).c_str());
    ::closedir(d);
  }
  DIR* d = ::opendir((dir_ + "/queue").c_str());
  if (!d) return;
  std::vector<std::string> orphans;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".eml") continue;
    std::string id = name.substr(0, name.size() - 4);
    auto st = db_->prepare("SELECT 1 FROM messages WHERE id=?");
    st.bind(1, id);
    if (!st.step()) orphans.push_back(id);
  }
  ::closedir(d);
  for (const auto& id : orphans) {
    const std::string raw = text::read_file(path_of(id, State::Queued)).value_or("");
    Incoming::Hash h;
    EVP_DigestUpdate(h.ctx, raw.data(), raw.size());
    std::string mid = find_message_id(std::string_view(raw).substr(0, kHeaderScan));
    std::string key = mid.empty() ? "sha256:" + h.hex() : "mid:" + text::ascii_lower(mid);
    auto seen = db_->prepare("SELECT 1 FROM seen WHERE key=?");
    seen.bind(1, key);
    if (seen.step()) {
      ::unlink(path_of(id, State::Queued).c_str());
      continue;
    }
    std::int64_t now = now_unix();
    db_->exec("BEGIN IMMEDIATE");
    auto ins = db_->prepare(
        "INSERT INTO messages(id, state, seen_key, source, message_id, size, received_at, next_attempt_at) "
        "VALUES(?, 'queued', ?, 'recovered', ?, ?, ?, ?)");
    ins.bind(1, id).bind(2, key).bind(3, mid).bind(4, static_cast<std::int64_t>(raw.size())).bind(5, now).bind(6, now);
    ins.step();
    auto mark = db_->prepare("INSERT INTO seen(key, message, at) VALUES(?, ?, ?)");
    mark.bind(1, key).bind(2, id).bind(3, now);
    mark.step();
    db_->exec("COMMIT");
  }
}

std::vector<MessageRecord> Spool::due(std::int64_t now, std::size_t limit) {
  std::string sql = std::string("SELECT ") + Db::kColumns +
                    " FROM messages WHERE state='queued' AND next_attempt_at<=? ORDER BY next_attempt_at, id LIMIT ?";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, now).bind(2, static_cast<std::int64_t>(limit));
  std::vector<MessageRecord> out;
  while (st.step()) out.push_back(Db::row(st));
  return out;
}

std::optional<MessageRecord> Spool::get(const std::string& id) {
  std::string sql = std::string("SELECT ") + Db::kColumns + " FROM messages WHERE id=?";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return Db::row(st);
}

std::string Spool::read_raw(const std::string& id) {
  auto rec = get(id);
  auto raw = text::read_file(existing_path(id, rec ? rec->state : State::Queued));
  if (!raw) throw std::runtime_error("spool file of " + id + " is missing");
  return std::move(*raw);
}

void Spool::set_user(const std::string& id, const std::string& uuid) {
  auto st = db_->prepare("UPDATE messages SET user_uuid=? WHERE id=?");
  st.bind(1, uuid).bind(2, id);
  st.step();
}

std::vector<MediaRecord> Spool::media(const std::string& id) {
  auto st = db_->prepare("SELECT ref, uuid, uploaded_at FROM media WHERE message=?");
  st.bind(1, id);
  std::vector<MediaRecord> out;
  while (st.step()) out.push_back({st.text(0), st.text(1), st.integer(2)});
  return out;
}

void Spool::set_media(const std::string& id, const MediaRecord& m) {
  auto st = db_->prepare("INSERT OR REPLACE INTO media(message, ref, uuid, uploaded_at) VALUES(?, ?, ?, ?)");
  st.bind(1, id).bind(2, m.ref).bind(3, m.uuid).bind(4, m.uploaded_at);
  st.step();
}

void Spool::mark_ticket_post_started(const std::string& id) {
  auto st = db_->prepare(
      "UPDATE messages SET ticket_post_started=1, ticket_post_started_at=CASE WHEN ticket_post_started_at=0 "
      "THEN ? ELSE ticket_post_started_at END WHERE id=?");
  st.bind(1, now_unix()).bind(2, id);
  st.step();
}

// After a message is queued, the database is the truth about its state and
// the directory it sits in is a convenience for operators. So moves are not
// synced: a crash may leave a done or failed message's file in queue/ (it has
// a row, so recover() leaves it alone), and readers look in every directory.
// This keeps two directory fsyncs per message off the processor's path.
void Spool::move_file(const std::string& id, State from, State to) {
  if (from == to) return;
  ::rename(existing_path(id, from).c_str(), path_of(id, to).c_str());
}

std::string Spool::existing_path(const std::string& id, State state) const {
  std::string path = path_of(id, state);
  if (::access(path.c_str(), F_OK) == 0) return path;
  for (State other : kAllStates) {
    std::string alt = path_of(id, other);
    if (other != state && ::access(alt.c_str(), F_OK) == 0) return alt;
  }
  return path;
}

void Spool::set_ticket(const std::string& id, const std::string& ticket_id, const std::string& full_uuid) {
  // The record of the ticket id comes first: once it is durable, a crash
  // can no longer cause the ticket to be posted again.
  auto st = db_->prepare(
      "UPDATE messages SET ticket_id=?, ticket_full_uuid=?, ticket_post_started=0, state='done', outcome=?, "
      "finished_at=?, last_error='' WHERE id=?");
  std::string outcome = "ticket " + ticket_id + (full_uuid.empty() ? "" : " " + full_uuid);
  st.bind(1, ticket_id).bind(2, full_uuid).bind(3, outcome).bind(4, now_unix()).bind(5, id);
  st.step();
  move_file(id, State::Queued, State::Done);
}

std::optional<std::string> Spool::message_with_ticket(const std::string& ticket_id) {
  auto st = db_->prepare("SELECT id FROM messages WHERE ticket_id=? LIMIT 1");
  st.bind(1, ticket_id);
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

void Spool::finish(const std::string& id, const std::string& outcome) {
  auto st = db_->prepare("UPDATE messages SET state='done', outcome=?, finished_at=? WHERE id=?");
  st.bind(1, outcome).bind(2, now_unix()).bind(3, id);
  st.step();
  move_file(id, State::Queued, State::Done);
}

void Spool::defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error) {
  auto st = db_->prepare("UPDATE messages SET next_attempt_at=?, attempts=attempts+1, last_error=? WHERE id=?");
  st.bind(1, next_attempt_at).bind(2, error).bind(3, id);
  st.step();
}

void Spool::fail(const std::string& id, const std::string& reason) {
  auto st = db_->prepare(
      "UPDATE messages SET state='failed', outcome=?, last_error=?, finished_at=?, attempts=attempts+1 WHERE id=?");
  st.bind(1, "failed: " + reason).bind(2, reason).bind(3, now_unix()).bind(4, id);
  st.step();
  move_file(id, State::Queued, State::Failed);
  std::ofstream(dir_ + "/failed/" + id + ".reason") << reason << "\n";
}

std::optional<std::string> Spool::cached_user(const std::string& address) {
  auto st = db_->prepare("SELECT uuid FROM users WHERE address=?");
  st.bind(1, text::ascii_lower(address));
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

void Spool::cache_user(const std::string& address, const std::string& uuid) {
  auto st = db_->prepare("INSERT OR REPLACE INTO users(address, uuid, at) VALUES(?, ?, ?)");
  st.bind(1, text::ascii_lower(address)).bind(2, uuid).bind(3, now_unix());
  st.step();
}

Spool::ImapMark Spool::imap_mark(const std::string& mailbox) {
  auto st = db_->prepare("SELECT uidvalidity, last_uid FROM imap_marks WHERE mailbox=?");
  st.bind(1, mailbox);
  if (!st.step()) return {};
  return {static_cast<std::uint64_t>(st.integer(0)), static_cast<std::uint64_t>(st.integer(1))};
}

void Spool::set_imap_mark(const std::string& mailbox, const ImapMark& mark) {
  auto st = db_->prepare("INSERT OR REPLACE INTO imap_marks(mailbox, uidvalidity, last_uid) VALUES(?, ?, ?)");
  st.bind(1, mailbox).bind(2, static_cast<std::int64_t>(mark.uidvalidity)).bind(3, static_cast<std::int64_t>(mark.last_uid));
  st.step();
}

void Spool::record_imap_skip(const std::string& mailbox, std::uint64_t uidvalidity, std::uint64_t uid,
                             std::uint64_t size, const std::string& reason) {
  auto st = db_->prepare(
      "INSERT OR REPLACE INTO imap_skipped(mailbox, uidvalidity, uid, size, reason, at) VALUES(?, ?, ?, ?, ?, ?)");
  st.bind(1, mailbox).bind(2, static_cast<std::int64_t>(uidvalidity)).bind(3, static_cast<std::int64_t>(uid));
  st.bind(4, static_cast<std::int64_t>(size)).bind(5, reason).bind(6, now_unix());
  st.step();
}

Spool::Stats Spool::stats() {
  Stats out;
  auto st = db_->prepare("SELECT state, COALESCE(source, ''), COUNT(*) FROM messages GROUP BY state, source");
  while (st.step())
    out.counts.push_back({state_from(st.text(0)), st.text(1), static_cast<std::uint64_t>(st.integer(2))});
  auto q = db_->prepare(
      "SELECT COALESCE(SUM(size),0), COALESCE(SUM(attempts>0),0), COALESCE(MIN(received_at),0) FROM messages "
      "WHERE state='queued'");
  q.step();
  out.queued_bytes = static_cast<std::uint64_t>(q.integer(0));
  out.deferred = static_cast<std::uint64_t>(q.integer(1));
  out.oldest_queued_at = q.integer(2);
  auto held = db_->prepare("SELECT decision_kind, COUNT(*) FROM messages WHERE state='held' GROUP BY decision_kind");
  while (held.step()) out.held_by_kind.emplace_back(held.text(0), static_cast<std::uint64_t>(held.integer(1)));
  return out;
}

void Spool::forget_user(const std::string& address) {
  auto st = db_->prepare("DELETE FROM users WHERE address=?");
  st.bind(1, text::ascii_lower(address));
  st.step();
}

void Spool::forget_references(const std::string& id, bool user, bool media) {
  auto st = db_->prepare(user ? "UPDATE messages SET user_uuid='', ticket_post_started=0 WHERE id=?"
                              : "UPDATE messages SET ticket_post_started=0 WHERE id=?");
  st.bind(1, id);
  st.step();
  if (media) {
    auto del = db_->prepare("DELETE FROM media WHERE message=?");
    del.bind(1, id);
    del.step();
  }
}

std::vector<MessageRecord> Spool::list(std::optional<State> state) {
  std::string sql = std::string("SELECT ") + Db::kColumns + " FROM messages" + (state ? " WHERE state=?" : "") +
                    " ORDER BY received_at, id";
  auto st = db_->prepare(sql.c_str());
  if (state) st.bind(1, std::string(to_string(*state)));
  std::vector<MessageRecord> out;
  while (st.step()) out.push_back(Db::row(st));
  return out;
}

bool Spool::retry(const std::string& id) {
  auto rec = get(id);
  if (!rec) return false;
  // Ignored mail past policy.ignored_retention has no file left to post.
  if (rec->state == State::Ignored)
    return ::access(existing_path(id, State::Ignored).c_str(), F_OK) == 0 &&
           requeue_decided_by_person(id, State::Ignored);
  if (rec->state != State::Failed && rec->state != State::Queued) return false;
  move_file(id, rec->state, State::Queued);
  ::unlink((dir_ + "/failed/" + id + ".reason").c_str());
  // A person's decision (design.md): policy and flood are skipped when it
  // is decided again; a recorded ticket decision stays as it was.
  // A recorded decision stays, dated now: give_up_after counts from here.
  auto st = db_->prepare(
      "UPDATE messages SET state='queued', next_attempt_at=?1, outcome='', person_decided=1, "
      "decided_at=CASE WHEN decision='' THEN 0 ELSE ?1 END WHERE id=?2");
  st.bind(1, now_unix()).bind(2, id);
  st.step();
  return true;
}

bool Spool::release(const std::string& id) {
  auto rec = get(id);
  if (!rec || rec->state != State::Held) return false;
  return requeue_decided_by_person(id, State::Held);
}

// Back to queued with the earlier decision forgotten and the mark that a
// person decided: the processor decides again, skipping policy and flood.
bool Spool::requeue_decided_by_person(const std::string& id, State from) {
  auto st = db_->prepare(
      "UPDATE messages SET state='queued', next_attempt_at=?, outcome='', finished_at=0, person_decided=1, "
      "decision='', decision_route='', decision_reason='', decision_kind='', decided_at=0 WHERE id=? AND state=?");
  st.bind(1, now_unix()).bind(2, id).bind(3, std::string(to_string(from)));
  st.step();
  if (sqlite3_changes(db_->db) != 1) return false;
  move_file(id, from, State::Queued);
  return true;
}

void Spool::record_decision(const std::string& id, const RecordedDecision& d) {
  const State to = d.action == "hold" ? State::Held : d.action == "ignore" ? State::Ignored : State::Queued;
  const std::string outcome = to == State::Held ? "held: " + d.reason : to == State::Ignored ? "ignored: " + d.reason : "";
  auto st = db_->prepare(
      "UPDATE messages SET decision=?, decision_route=?, decision_reason=?, decision_kind=?, decision_from=?, "
      "decision_subject=?, decision_fields=?, decided_at=?, state=?, outcome=?, "
      "finished_at=CASE WHEN ?='ignored' THEN ? ELSE finished_at END WHERE id=?");
  const std::string state(to_string(to));
  const std::int64_t now = now_unix();
  st.bind(1, d.action).bind(2, d.route).bind(3, d.reason).bind(4, d.kind).bind(5, text::ascii_lower(d.from_address));
  st.bind(6, d.subject).bind(7, d.ticket_fields).bind(8, now).bind(9, state).bind(10, outcome);
  st.bind(11, state).bind(12, now).bind(13, id);
  st.step();
  move_file(id, State::Queued, to);
}

int Spool::count_ticket_decisions(const std::string& from_address, std::int64_t since, const std::string& except_id) {
  auto st = db_->prepare(
      "SELECT COUNT(*) FROM messages WHERE decision_from=? AND decided_at>=? AND decision='ticket' AND id<>?");
  st.bind(1, text::ascii_lower(from_address)).bind(2, since).bind(3, except_id);
  st.step();
  return static_cast<int>(st.integer(0));
}

std::string Spool::dry_run_path(const std::string& id) const { return dir_ + "/dry-run/" + id + ".json"; }

bool Spool::drop(const std::string& id) {
  auto rec = get(id);
  if (!rec) return false;
  for (State st : kAllStates) ::unlink(path_of(id, st).c_str());
  ::unlink((dir_ + "/failed/" + id + ".reason").c_str());
  for (const char* sql : {"DELETE FROM media WHERE message=?", "DELETE FROM messages WHERE id=?"}) {
    auto st = db_->prepare(sql);
    st.bind(1, id);
    st.step();
  }
  return true;
}

std::size_t Spool::expire_done(std::int64_t now, std::int64_t retention_seconds) {
  return expire_files(State::Done, now, retention_seconds);
}

std::size_t Spool::expire_ignored(std::int64_t now, std::int64_t retention_seconds) {
  return expire_files(State::Ignored, now, retention_seconds);
}

// The raw file goes; the record stays (the seen-set, `queue list`).
std::size_t Spool::expire_files(State state, std::int64_t now, std::int64_t retention_seconds) {
  auto st = db_->prepare("SELECT id FROM messages WHERE state=? AND finished_at>0 AND finished_at<?");
  st.bind(1, std::string(to_string(state))).bind(2, now - retention_seconds);
  std::size_t n = 0;
  while (st.step()) n += ::unlink(existing_path(st.text(0), state).c_str()) == 0;
  return n;
}

}  // namespace mailgate::spool
