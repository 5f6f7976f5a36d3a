// Internal to lib/spool: the committer thread's state (committer.cpp). Its
// database connection is its own: no other thread uses Committer::db.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "db.hpp"

namespace mailgate::spool {

struct Spool::Committer {
  static constexpr std::size_t kMaxBatch = 256;
  std::mutex mutex;  // guards waiting and stopping
  std::condition_variable wake;
  std::deque<PendingCommit> waiting;
  bool stopping = false;
  std::unique_ptr<Db> db;
  std::thread thread;
};

}  // namespace mailgate::spool
