// The processor's ledger kept in the spool (SQLite and files): what
// `mailgate serve` uses. Thin: each call is one Spool call (ledger.hpp says
// what each promises). Threads: the processor's executor only; the spool's
// database handle is opened SQLITE_OPEN_FULLMUTEX, so the spool's committer
// thread may use it at the same time.
#pragma once

#include <memory>

#include "mailgate/pipeline/ledger.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::pipeline {

// A SpoolLedger over `spool`, which must outlive it.
std::unique_ptr<Ledger> make_spool_ledger(spool::Spool& spool);

}  // namespace mailgate::pipeline
