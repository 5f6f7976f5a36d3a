// Intake: received mail made durable and queued, or recognised as seen
// before — capacity, the group commit's steps, the synchronous commit. The
// committer thread that drives commit_batch is committer.cpp.
#include "mailgate/spool/spool.hpp"

#include "files.hpp"
#include "intake.hpp"
#include "mailgate/text/ascii.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mailgate::spool {
namespace {

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
           {"Delivered-To"}, {"X-Original-To"}, {"To", "Cc"}}) {
    for (auto name : names)
      for (const auto& value : mail::scan_head(head, name, kMaxEnvelopeRecipients)) collect_addresses(value, out);
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

}  // namespace

std::string seen_key(std::string_view message_id, std::string_view sha256_hex) {
  return message_id.empty() ? "sha256:" + std::string(sha256_hex) : "mid:" + text::ascii_lower(message_id);
}

std::optional<std::string> seen_message(Db& db, const std::string& key) {
  auto seen = db.prepare("SELECT message FROM seen WHERE key=?");
  seen.bind(1, key);
  if (!seen.step()) return std::nullopt;
  return seen.text(0);
}

void insert_queued(Db& db, const QueuedMessage& m, std::int64_t now) {
  auto ins = db.prepare(
      "INSERT INTO messages(id, state, seen_key, source, message_id, size, received_at, next_attempt_at, "
      "mail_from, recipients, envelope_kept) VALUES(?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ins.bind(1, m.id).bind(2, m.seen_key).bind(3, m.source).bind(4, m.message_id)
      .bind(5, static_cast<std::int64_t>(m.size)).bind(6, now).bind(7, now)
      .bind(8, m.envelope.mail_from).bind(9, join_lines(m.envelope.recipients))
      .bind(10, static_cast<std::int64_t>(m.envelope_kept));
  ins.step();
  auto mark = db.prepare("INSERT INTO seen(key, message, at) VALUES(?, ?, ?)");
  mark.bind(1, m.seen_key).bind(2, m.id).bind(3, now);
  mark.step();
}

std::uint64_t queued_bytes(Db& db) {
  auto st = db.prepare("SELECT COALESCE(SUM(size),0) FROM messages WHERE state='queued'");
  st.step();
  return static_cast<std::uint64_t>(st.integer(0));
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
  if (limits_.max_queue_bytes > 0 && queued_bytes(*db_) + expected_size > limits_.max_queue_bytes)
    return Shortage{Refusal::QueueFull, "spool queue full"};
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
  const std::vector<PendingCommit*> live = sync_files(batch);
  if (live.empty()) return;
  std::vector<PendingCommit*> queued;
  try {
    Db::Transaction transaction(db);
    queued = enter_queue(db, live);
    if (!queued.empty()) fsync_dir(dir_ + "/queue");
    transaction.commit();
  } catch (const std::exception& e) {
    // Files already in queue/ are adopted by recover() at the next start, so
    // nothing is lost, but none of them may be acknowledged.
    for (auto* p : live)
      if (!p->settled || p->result.kind == AcceptResult::Kind::Duplicate)
        refuse(*p, std::string("spool database: ") + e.what());
    return;
  }
  for (auto* p : queued) {
    p->result = {AcceptResult::Kind::Accepted, p->in.id_, "", Refusal::None};
    p->settled = true;
  }
}

void Spool::refuse(PendingCommit& p, std::string reason, Refusal refusal) {
  p.in.discard();
  p.result = {AcceptResult::Kind::TemporaryFailure, p.in.id_, std::move(reason), refusal};
  p.settled = true;
}

// The batch's bytes on disk; returns the messages whose bytes are (the
// others are settled). One message: fsync its file. Several: one syncfs
// writes them all (a per-file fsync after it would still cost a synchronous
// inode write each). syncfs reports write-back errors of the file system
// since Linux 5.8; an error fails the whole batch, which the senders retry.
std::vector<Spool::PendingCommit*> Spool::sync_files(std::vector<PendingCommit>& batch) {
  std::vector<PendingCommit*> live;
  for (auto& p : batch) {
    if (!p.in.error_.empty() || !p.in.flush()) refuse(p, p.in.error_, p.in.error_refusal_);
    else live.push_back(&p);
  }
  if (live.empty()) return live;
  const bool synced = live.size() == 1 ? ::fsync(live.front()->in.fd_) == 0 : ::syncfs(live.front()->in.fd_) == 0;
  const std::string sync_error = synced ? "" : std::string("spool fsync failed: ") + std::strerror(errno);
  for (auto* p : live) {
    ::close(p->in.fd_);
    p->in.fd_ = -1;
    if (!synced) refuse(*p, sync_error);
  }
  if (!synced) live.clear();
  return live;
}

// Inside the batch's transaction: every message that is not a duplicate and
// fits the queue limit enters queue/. Returns those that did.
std::vector<Spool::PendingCommit*> Spool::enter_queue(Db& db, const std::vector<PendingCommit*>& live) {
  std::uint64_t queued_so_far = limits_.max_queue_bytes > 0 ? queued_bytes(db) : 0;
  const std::int64_t now = now_unix();
  std::vector<PendingCommit*> queued;
  for (auto* p : live)
    if (enqueue(db, *p, queued_so_far, now)) queued.push_back(p);
  return queued;
}

// One message of the batch: a duplicate (seen before, or earlier in this
// batch) is settled at once; else it is renamed into queue/ and given its
// rows. True when it was queued.
bool Spool::enqueue(Db& db, PendingCommit& p, std::uint64_t& queued_so_far, std::int64_t now) {
  const std::string message_id = mail::message_id(p.in.header_);
  const std::string key = seen_key(message_id, p.in.sha256_hex());
  if (auto earlier = seen_message(db, key)) {
    p.result = {AcceptResult::Kind::Duplicate, *earlier, "", Refusal::None};
    p.in.discard();
    p.settled = true;
    return false;
  }
  if (limits_.max_queue_bytes > 0 && queued_so_far + p.in.size_ > limits_.max_queue_bytes) {
    refuse(p, "spool queue full", Refusal::QueueFull);  // a copy of a queued mail is still welcome (above)
    return false;
  }
  queued_so_far += p.in.size_;
  if (::rename(p.in.path_.c_str(), path_of(p.in.id_, State::Queued).c_str()) != 0) {
    refuse(p, std::string("spool rename failed: ") + std::strerror(errno));
    return false;
  }
  p.in.path_.clear();  // the file is no longer ours to delete
  insert_queued(db, {p.in.id_, key, p.source, message_id, p.in.size_,
                     stored_envelope(p.in.envelope_, p.source, p.in.header_), p.in.envelope_.has_value()}, now);
  return true;
}

AcceptResult Spool::commit(Incoming&& in, const std::string& source) {
  std::vector<PendingCommit> one;
  one.push_back({std::move(in), source, {}});
  commit_batch(*db_, one);
  return one.front().result;
}

AcceptResult Spool::accept(std::string_view raw, const std::string& source) {
  if (auto full = capacity(raw.size())) return {AcceptResult::Kind::TemporaryFailure, "", full->reason, full->refusal};
  Incoming in = begin();
  in.write(raw);
  return commit(std::move(in), source);
}

}  // namespace mailgate::spool
