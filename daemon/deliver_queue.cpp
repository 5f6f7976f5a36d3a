// `mailgate deliver` (MTA pipe transport) and `mailgate queue` (operator).
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "mailgate/config/config.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/mail/mime_parser.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {
namespace {

std::string when(std::int64_t t) {
  char buf[32];
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// What the spool holds came from mail (Message-ID, errors quoting it): a
// hostile value must not reach the operator's terminal as escape sequences.
std::string safe(std::string_view s) { return log::escape_controls(s); }

}  // namespace

int deliver(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file, recipient;
  bool have_config = take_option(args, "--config", file);
  take_option(args, "--recipient", recipient);
  if (!have_config || !args.empty()) {
    std::cerr << "usage: mailgate deliver --config FILE [--recipient ADDR] < message\n";
    return kExitUsage;
  }
  auto cfg = load_config_or_report(file);
  if (!cfg) return kExitConfig;
  std::unique_ptr<spool::Spool> spool;
  try {
    spool = spool::Spool::open(cfg->spool_dir, {cfg->queue.max_size, cfg->queue.min_free_space});
  } catch (const std::exception& e) {
    std::cerr << "mailgate deliver: spool unusable: " << e.what() << "\n";
    return kExitTempFail;
  }
  if (auto full = spool->check_capacity()) {
    std::cerr << "mailgate deliver: " << *full << "; try again later\n";
    return kExitTempFail;
  }
  // Stream stdin to the spool file; keep the head to check it is a mail.
  spool::Incoming msg = spool->begin();
  std::string head;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::cerr << "mailgate deliver: reading the message failed\n";
      return kExitTempFail;
    }
    if (n == 0) break;
    if (head.size() < 64 * 1024) head.append(buf, static_cast<std::size_t>(std::min<ssize_t>(n, 64 * 1024)));
    if (msg.size() + static_cast<std::uint64_t>(n) > (cfg->smtp ? cfg->smtp->max_message_size : 25ull << 20)) {
      std::cerr << "mailgate deliver: message larger than the size limit\n";
      return kExitDataErr;
    }
    msg.write(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  mail::MimePart part;
  mail::parse_header_block(head, part, {});
  if (head.empty() || part.headers.empty()) {
    std::cerr << "mailgate deliver: the input is not an email message (no header fields)\n";
    return kExitDataErr;
  }
  const std::uint64_t size = msg.size();
  auto r = spool->commit(std::move(msg), "deliver");
  switch (r.kind) {
    case spool::AcceptResult::Kind::Accepted:
      log::info("deliver.queued", {{"spool_id", r.id}, {"recipient", recipient}, {"size", std::to_string(size)}});
      return kExitOk;
    case spool::AcceptResult::Kind::Duplicate:
      log::info("deliver.duplicate", {{"spool_id", r.id}, {"recipient", recipient}});
      return kExitOk;
    case spool::AcceptResult::Kind::TemporaryFailure:
      std::cerr << "mailgate deliver: " << r.reason << "; try again later\n";
      return kExitTempFail;
  }
  return kExitTempFail;
}

int queue(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file;
  bool have_config = take_option(args, "--config", file);
  if (!have_config || args.empty() || (args[0] != "list" && args.size() != 2)) {
    std::cerr << "usage: mailgate queue list|show ID|retry ID|drop ID --config FILE\n";
    return kExitUsage;
  }
  auto cfg = load_config_or_report(file);
  if (!cfg) return kExitConfig;
  std::unique_ptr<spool::Spool> spool;
  try {
    spool = spool::Spool::open(cfg->spool_dir);
  } catch (const std::exception& e) {
    std::cerr << "mailgate queue: " << e.what() << "\n";
    return 1;
  }
  const std::string& what = args[0];
  if (what == "list") {
    auto all = spool->list();
    std::printf("%-25s %-7s %-19s %-8s %s\n", "ID", "STATE", "RECEIVED", "ATTEMPTS", "OUTCOME / LAST ERROR");
    for (const auto& m : all)
      std::printf("%-25s %-7s %-19s %-8d %s\n", safe(m.id).c_str(), std::string(spool::to_string(m.state)).c_str(),
                  when(m.received_at).c_str(), m.attempts,
                  safe((m.outcome.empty() ? m.last_error : m.outcome).substr(0, 100)).c_str());
    std::printf("%zu message(s)\n", all.size());
    return 0;
  }
  const std::string& id = args[1];
  if (what == "show") {
    auto m = spool->get(id);
    if (!m) {
      std::cerr << "mailgate queue: no message " << safe(id) << "\n";
      return 1;
    }
    std::cout << "id: " << safe(m->id) << "\nstate: " << spool::to_string(m->state) << "\nsource: " << safe(m->source)
              << "\nmessage_id: " << safe(m->message_id) << "\nsize: " << m->size
              << "\nreceived: " << when(m->received_at) << "\nattempts: " << m->attempts
              << "\nnext_attempt: " << when(m->next_attempt_at) << "\nlast_error: " << safe(m->last_error)
              << "\nuser: " << safe(m->user_uuid) << "\nticket: " << safe(m->ticket_id)
              << "\nticket_full_uuid: " << safe(m->ticket_full_uuid)
              << "\noutcome: " << safe(m->outcome) << "\nfile: " << safe(spool->existing_path(m->id, m->state)) << "\n";
    for (const auto& media : spool->media(id))
      std::cout << "media: " << safe(media.ref) << " " << safe(media.uuid) << " uploaded " << when(media.uploaded_at)
                << "\n";
    return 0;
  }
  if (what == "retry") {
    if (!spool->retry(id)) {
      std::cerr << "mailgate queue: " << id << " is not a failed or queued message\n";
      return 1;
    }
    std::cout << id << " queued for another attempt\n";
    return 0;
  }
  if (what == "drop") {
    if (!spool->drop(id)) {
      std::cerr << "mailgate queue: no message " << id << "\n";
      return 1;
    }
    std::cout << id << " dropped\n";
    return 0;
  }
  std::cerr << "usage: mailgate queue list|show ID|retry ID|drop ID --config FILE\n";
  return kExitUsage;
}

}  // namespace mailgate::cli
