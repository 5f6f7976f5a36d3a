// The spool's directory layout: one directory per state (ignored mail shares
// done/), tmp/ for mail being received, dry-run/ for the tickets a dry run
// would post, failed/ID.reason beside a failed message. Nobody outside
// lib/spool builds these paths.
#include "files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace mailgate::spool {
namespace {

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

}  // namespace

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

std::string Spool::path_of(const std::string& id, State state) const {
  return dir_ + "/" + dir_name(state) + "/" + id + ".eml";
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

std::string Spool::dry_run_path(const std::string& id) const { return dir_ + "/dry-run/" + id + ".json"; }

std::string Spool::reason_path(const std::string& id) const { return dir_ + "/failed/" + id + ".reason"; }

// After a message is queued, the database is the truth about its state and
// the directory it sits in is a convenience for operators. So moves are not
// synced: a crash may leave a done or failed message's file in queue/ (it has
// a row, so recover() leaves it alone), and readers look in every directory.
// This keeps two directory fsyncs per message off the processor's path.
void Spool::move_file(const std::string& id, State from, State to) {
  if (from == to) return;
  ::rename(existing_path(id, from).c_str(), path_of(id, to).c_str());
}

}  // namespace mailgate::spool
