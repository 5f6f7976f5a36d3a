// Spool: files for bytes, SQLite for state. Every state change that matters
// is one SQLite transaction (fsync'd by SQLite) plus, where a file moves,
// rename(2) and an fsync of both directories. This file opens and closes a
// spool and names its states; the jobs live in the files spool.hpp lists.
#include "mailgate/spool/spool.hpp"

#include "committer.hpp"
#include "db.hpp"
#include "files.hpp"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <random>

namespace mailgate::spool {

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

std::unique_ptr<Spool> Spool::open(const std::string& dir, SpoolLimits limits) {
  std::unique_ptr<Spool> s(new Spool());
  s->dir_ = dir;
  s->limits_ = limits;
  make_dir(dir);
  for (const char* sub : kSubdirectories) make_dir(dir + "/" + sub);
  s->db_ = Db::open(dir);
  s->recover();
  return s;
}

Spool::~Spool() { stop_committer(); }

}  // namespace mailgate::spool
