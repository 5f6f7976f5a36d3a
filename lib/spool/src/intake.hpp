// Internal to lib/spool: what the group commit (intake.cpp) and crash
// recovery (recovery.cpp) share, so that both recognise a message the same
// way and record it the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "db.hpp"
#include "mailgate/mail/header_block.hpp"

namespace mailgate::spool {

// The head every ingest path reads (mail::kMailHeadBytes): the seen-set's
// Message-ID (mail::message_id) must be in the first 64 KiB.
inline constexpr std::size_t kHeaderScan = mail::kMailHeadBytes;

// The seen-set's key of a message: its Message-ID (case-insensitive), or
// the SHA-256 of its bytes when it has none.
std::string seen_key(std::string_view message_id, std::string_view sha256_hex);

// The message that the seen-set holds under `key`, if any.
std::optional<std::string> seen_message(Db& db, const std::string& key);

// A message entering queue/: its row and its seen-set row.
struct QueuedMessage {
  std::string id, seen_key, source, message_id;
  std::uint64_t size = 0;
  Envelope envelope;
  bool envelope_kept = false;  // the ingest handed an envelope in
};
void insert_queued(Db& db, const QueuedMessage& message, std::int64_t now);

}  // namespace mailgate::spool
