// The one place where the configuration file (config::Config) becomes each
// room's settings. Every field a config key stands for is set here from the
// config, never left to a library default; a choice (enum) is translated by
// a switch without a default label, so -Wswitch names every translation a
// new enumerator must reach. Settings the file has no key for (the IMAP
// backoff, the processor's retry base, the Messenger token margins, ...)
// keep the library's own value: they are the library's, not the operator's.
//
// serve, deliver, queue, preview and check-config --connect all call these,
// so what check-config tries is what serve runs. Pure functions of their
// arguments: any thread.
#pragma once

#include <cstdint>
#include <memory>

#include "mailgate/config/config.hpp"
#include "mailgate/imap/fetcher.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/pipeline/processor.hpp"
#include "mailgate/routing/router.hpp"
#include "mailgate/smtp/smtp_server.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {

messenger::MessengerSettings messenger_settings(const config::Config& c);
smtp::SmtpSettings smtp_settings(const config::SmtpConfig& c);
imap::MailboxSettings mailbox_settings(const config::ImapMailboxConfig& m);
spool::SpoolLimits spool_limits(const config::Config& c);
// mail.*, senders.* and threading.strip_quoted; also what preview drafts
// with (a default Config without --config).
mail::DraftOptions draft_options(const config::Config& c);
// `router`: the routes and policy of `c`, built by the caller (building can
// fail, with errors to report; this cannot).
pipeline::ProcessorSettings processor_settings(const config::Config& c, std::shared_ptr<const routing::Router> router);
bool dry_run(config::MessengerMode mode);
log::Format log_format(config::LogFormat format);
// `mailgate deliver`'s limit: smtp.max_message_size, the SMTP default when
// there is no smtp section (the pipe takes what SMTP would).
std::uint64_t deliver_max_size(const config::Config& c);

}  // namespace mailgate::cli
