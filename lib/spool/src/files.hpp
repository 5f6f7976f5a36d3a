// Internal to lib/spool: the spool's directories (files.cpp).
#pragma once

#include <string>

#include "mailgate/spool/spool.hpp"

namespace mailgate::spool {

inline constexpr State kAllStates[] = {State::Queued, State::Held, State::Done, State::Ignored, State::Failed};

// The subdirectories Spool::open creates under the spool's directory.
inline constexpr const char* kSubdirectories[] = {"tmp", "queue", "held", "done", "failed", "dry-run"};

void fsync_dir(const std::string& dir);
void make_dir(const std::string& dir);

}  // namespace mailgate::spool
