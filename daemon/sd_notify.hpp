// systemd's notification protocol (sd_notify(3)) without libsystemd: one
// datagram to $NOTIFY_SOCKET. A no-op when not run by systemd.
#pragma once

#include <string_view>

namespace mailgate::daemon {

void sd_notify(std::string_view state);  // e.g. "READY=1", "STATUS=…", "WATCHDOG=1"
// Half the watchdog interval systemd expects, in microseconds; 0 if none.
unsigned long long watchdog_interval_usec();

}  // namespace mailgate::daemon
