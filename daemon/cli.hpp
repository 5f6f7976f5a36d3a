// The subcommands of the mailgate executable (design.md "Command line").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/config/config.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {

// sysexits.h values the design promises.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;     // EX_USAGE
inline constexpr int kExitDataErr = 65;   // EX_DATAERR
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: a check-config --connect check failed
inline constexpr int kExitConfig = 78;    // EX_CONFIG

int check_config(const std::vector<std::string>& args);
int preview(const std::vector<std::string>& args);
int serve(const std::vector<std::string>& args);
int deliver(const std::vector<std::string>& args);
int queue(const std::vector<std::string>& args);

// Shared by the subcommands. What each library is given is translated from
// the config in one place: settings.hpp.
bool take_option(std::vector<std::string>& args, const std::string& name, std::string& value);
// check-config --connect (check_connect.cpp): every check, one line each;
// kExitOk when all pass, else kExitUnavailable.
int check_connect(const config::Config& c);
// Loads FILE; on errors prints them as FILE:LINE:COL lines and returns nullopt.
std::optional<config::Config> load_config_or_report(const std::string& file);
// The spool of `c` with its limits; on failure prints "mailgate COMMAND: spool
// unusable: why" and returns null (the command chooses its exit code).
std::unique_ptr<spool::Spool> open_spool_or_report(const config::Config& c, std::string_view command);

}  // namespace mailgate::cli
