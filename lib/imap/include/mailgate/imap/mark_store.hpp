// Where a fetcher keeps, per mailbox, how far it has imported (UIDVALIDITY
// and the last settled UID) and which messages it skipped. The fetcher owns
// this interface; the daemon gives it the spool's tables (SpoolMarkStore),
// tests an in-memory one.
//
// Threads: called only from the fetcher's coroutine (the ingest thread);
// one store may serve several fetchers on that thread (keyed by mailbox).
// Durability: set_mark and record_skip return once the record is durable
// (the fetcher acknowledges nothing the mark claims before that; a crash
// after set_mark must not fetch the messages below it as new).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mailgate::spool {
class Spool;
}

namespace mailgate::imap {

struct Mark {
  std::uint64_t uidvalidity = 0;  // 0: never selected
  std::uint64_t last_uid = 0;     // every UID up to this one is settled (imported or skipped)
  bool operator==(const Mark&) const = default;
};

// A message the fetcher passed without importing it (larger than the limit).
struct Skip {
  std::uint64_t uidvalidity = 0;
  std::uint64_t uid = 0;
  std::uint64_t size = 0;
  std::string reason;
  bool operator==(const Skip&) const = default;
};

class MarkStore {
 public:
  virtual ~MarkStore() = default;
  // {0, 0} for a mailbox never selected.
  virtual Mark mark(const std::string& mailbox) = 0;
  virtual void set_mark(const std::string& mailbox, const Mark& mark) = 0;
  virtual void record_skip(const std::string& mailbox, const Skip& skip) = 0;
};

// The spool's imap_marks and imap_skipped tables (SQLite, synchronous=FULL:
// durable when the call returns).
class SpoolMarkStore final : public MarkStore {
 public:
  explicit SpoolMarkStore(spool::Spool& spool) : spool_(spool) {}
  Mark mark(const std::string& mailbox) override;
  void set_mark(const std::string& mailbox, const Mark& mark) override;
  void record_skip(const std::string& mailbox, const Skip& skip) override;

 private:
  spool::Spool& spool_;
};

// For tests: everything in memory, every call recorded.
class MemoryMarkStore final : public MarkStore {
 public:
  Mark mark(const std::string& mailbox) override {
    auto it = marks.find(mailbox);
    return it == marks.end() ? Mark{} : it->second;
  }
  void set_mark(const std::string& mailbox, const Mark& mark) override {
    marks[mailbox] = mark;
    history[mailbox].push_back(mark);
  }
  void record_skip(const std::string& mailbox, const Skip& skip) override { skips[mailbox].push_back(skip); }

  std::map<std::string, Mark> marks;
  std::map<std::string, std::vector<Mark>> history;  // every set_mark, in order
  std::map<std::string, std::vector<Skip>> skips;
};

}  // namespace mailgate::imap
