// The committer: one thread with its own database connection, taking every
// message waiting when it finishes the previous batch (the group commit,
// intake.cpp). Sessions never block the event loop on a disk sync.
//
// Threads: commit_async and stop_committer are called by the ingest's
// thread; run_committer is the committer thread, the only user of
// Committer::db; `done` callbacks run on it.
#include "mailgate/spool/spool.hpp"

#include "committer.hpp"

namespace mailgate::spool {

void Spool::commit_async(Incoming&& in, std::string source, std::function<void(AcceptResult)> done) {
  {
    std::lock_guard lock(committer_start_);
    if (!committer_) {
      committer_ = std::make_unique<Committer>();
      committer_->db = Db::open(dir_);
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

}  // namespace mailgate::spool
