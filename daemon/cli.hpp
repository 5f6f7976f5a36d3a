// The subcommands of the mailgate executable (design.md "Command line").
#pragma once

#include <string>
#include <vector>

namespace mailgate::cli {

// sysexits.h values the design promises.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;     // EX_USAGE
inline constexpr int kExitDataErr = 65;   // EX_DATAERR
inline constexpr int kExitSoftware = 70;  // EX_SOFTWARE
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
inline constexpr int kExitConfig = 78;    // EX_CONFIG

int check_config(const std::vector<std::string>& args);
int preview(const std::vector<std::string>& args);

}  // namespace mailgate::cli
