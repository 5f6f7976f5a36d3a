// Crash recovery, run by Spool::open before any other thread uses the
// spool. Files a crash left in queue/ between rename and the database commit
// are adopted (they were never acknowledged, but keeping them loses nothing
// and the seen-set still stops a duplicate); tmp/ leftovers were never
// accepted.
#include "mailgate/spool/spool.hpp"

#include "intake.hpp"
#include "mailgate/text/encoding.hpp"
#include "mailgate/text/file.hpp"

#include <dirent.h>
#include <unistd.h>

namespace mailgate::spool {
namespace {

void remove_leftovers(const std::string& tmp_dir) {
  DIR* d = ::opendir(tmp_dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ::unlink((tmp_dir + "/" + e->d_name).c_str());
  ::closedir(d);
}

}  // namespace

void Spool::recover() {
  remove_leftovers(dir_ + "/tmp");
  for (const auto& id : queue_orphans()) adopt_orphan(id);
}

// The ids of the files in queue/ that have no row.
std::vector<std::string> Spool::queue_orphans() {
  std::vector<std::string> orphans;
  DIR* d = ::opendir((dir_ + "/queue").c_str());
  if (!d) return orphans;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".eml") continue;
    std::string id = name.substr(0, name.size() - 4);
    auto st = db_->prepare("SELECT 1 FROM messages WHERE id=?");
    st.bind(1, id);
    if (!st.step()) orphans.push_back(id);
  }
  ::closedir(d);
  return orphans;
}

// Queued as if it had just arrived (source "recovered", no envelope), unless
// the seen-set already has it: then the file goes.
void Spool::adopt_orphan(const std::string& id) {
  const std::string path = path_of(id, State::Queued);
  const std::string raw = text::read_file(path).value_or("");
  const std::string message_id = mail::message_id(std::string_view(raw).substr(0, kHeaderScan));
  const std::string key = seen_key(message_id, text::sha256_hex(raw));
  if (seen_message(*db_, key)) {
    ::unlink(path.c_str());
    return;
  }
  Db::Transaction transaction(*db_);
  insert_queued(*db_, {id, key, "recovered", message_id, raw.size(), {}, false}, now_unix());
  transaction.commit();
}

}  // namespace mailgate::spool
