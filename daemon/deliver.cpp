// `mailgate deliver`: the MTA pipe transport. One message from stdin into
// the spool with its envelope (--sender, --recipient); exit 0 only once it
// is durable, 75 so the MTA retries, 65 for input that is not a mail.
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "settings.hpp"
#include "mailgate/config/config.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/mail/header_block.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {
namespace {

// Every "--recipient ADDR" (Postfix passes one per delivery; several are allowed).
std::vector<std::string> take_all(std::vector<std::string>& args, const std::string& name) {
  std::vector<std::string> values;
  for (std::string value; values.size() < spool::kMaxEnvelopeRecipients && take_option(args, name, value);)
    values.push_back(value);
  return values;
}

// Streams stdin into the spool file, keeping the head to check it is a mail
// by the rule the pipeline applies too (what deliver accepts can become a ticket).
int read_stdin_into(spool::Incoming& msg, std::uint64_t max_size) {
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
    if (head.size() < mail::kMailHeadBytes)
      head.append(buf, std::min(static_cast<std::size_t>(n), mail::kMailHeadBytes - head.size()));
    if (msg.size() + static_cast<std::uint64_t>(n) > max_size) {
      std::cerr << "mailgate deliver: message larger than the size limit\n";
      return kExitDataErr;
    }
    msg.write(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  if (const mail::MailVerdict verdict = mail::classify_mail(head); verdict != mail::MailVerdict::Mail) {
    std::cerr << "mailgate deliver: " << mail::to_string(verdict) << "\n";
    return kExitDataErr;
  }
  return kExitOk;
}

// Durable (or already seen): 0; anything else: 75 so the MTA retries.
int report_commit(const spool::AcceptResult& r, const std::string& sender, const std::vector<std::string>& recipients,
                  std::uint64_t size) {
  const std::string first_recipient = recipients.empty() ? "" : recipients.front();
  switch (r.kind) {
    case spool::AcceptResult::Kind::Accepted:
      log::info("deliver.queued", {{"spool_id", r.id}, {"sender", sender}, {"recipient", first_recipient},
                                   {"rcpts", std::to_string(recipients.size())}, {"size", std::to_string(size)}});
      return kExitOk;
    case spool::AcceptResult::Kind::Duplicate:
      log::info("deliver.duplicate", {{"spool_id", r.id}, {"recipient", first_recipient}});
      return kExitOk;
    case spool::AcceptResult::Kind::TemporaryFailure:
      std::cerr << "mailgate deliver: " << r.reason << "; try again later\n";
      return kExitTempFail;
  }
  return kExitTempFail;
}

}  // namespace

int deliver(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file, sender;
  bool have_config = take_option(args, "--config", file);
  take_option(args, "--sender", sender);
  const std::vector<std::string> recipients = take_all(args, "--recipient");
  if (!have_config || !args.empty()) {
    std::cerr << "usage: mailgate deliver --config FILE [--sender ADDR] [--recipient ADDR]... < message\n";
    return kExitUsage;
  }
  auto cfg = load_config_or_report(file);
  if (!cfg) return kExitConfig;
  const std::unique_ptr<spool::Spool> spool = open_spool_or_report(*cfg, "deliver");
  if (!spool) return kExitTempFail;
  if (auto full = spool->check_capacity()) {
    std::cerr << "mailgate deliver: " << *full << "; try again later\n";
    return kExitTempFail;
  }
  spool::Incoming msg = spool->begin();
  if (const int exit = read_stdin_into(msg, deliver_max_size(*cfg)); exit != kExitOk) return exit;
  const std::uint64_t size = msg.size();
  msg.set_envelope(spool::Envelope{sender, recipients});
  return report_commit(spool->commit(std::move(msg), "deliver"), sender, recipients, size);
}

}  // namespace mailgate::cli
