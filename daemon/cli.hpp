// The subcommands of the mailgate executable (design.md "Command line").
#pragma once

#include <string>
#include <vector>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/ticket_draft.hpp"

namespace mailgate::cli {

// sysexits.h values the design promises.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;     // EX_USAGE
inline constexpr int kExitDataErr = 65;   // EX_DATAERR
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL
inline constexpr int kExitConfig = 78;    // EX_CONFIG

int check_config(const std::vector<std::string>& args);
int preview(const std::vector<std::string>& args);
int serve(const std::vector<std::string>& args);
int deliver(const std::vector<std::string>& args);
int queue(const std::vector<std::string>& args);

// Shared by the subcommands.
bool take_option(std::vector<std::string>& args, const std::string& name, std::string& value);
mail::DraftOptions draft_options(const config::Config& c);
// Loads FILE; on errors prints them as FILE:LINE:COL lines and returns nullopt.
std::optional<config::Config> load_config_or_report(const std::string& file);

}  // namespace mailgate::cli
