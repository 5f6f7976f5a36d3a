// mailgate: turns email into Inbenta Messenger tickets. This file only
// dispatches subcommands; each lives with the part it belongs to.
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

constexpr const char* kUsage = R"(usage: mailgate COMMAND [OPTIONS]

Commands:
  serve --config FILE          run the daemon in the foreground (systemd)
  check-config --config FILE   validate the configuration and print what it will do
  check-config --connect --config FILE
                               also try the API key, each IMAP login and folder,
                               the TLS files and the spool directory (a line each)
  preview FILE.eml [--config FILE] [--recipient ADDR]... [--sender ADDR] [--source NAME]
                               show, as JSON, the ticket a message would become
                               and what routes and policy decide
  deliver --config FILE [--sender ADDR] [--recipient ADDR]...
                               spool one message from stdin (MTA pipe transport)
  queue list [--held|--ignored|--failed|--queued|--done] [--json] --config FILE
  queue show|retry|release|drop ID --config FILE
                               inspect and manage the spool: retry failed or
                               ignored mail, release held mail

Options:
  --help      show this help
  --version   show the version

Exit status follows sysexits.h: 0 ok, 64 usage, 65 bad input, 69 a --connect
check failed, 75 try again, 78 configuration error.

Manuals: mailgate(8), mailgate.yaml(5).
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version") {
      std::cout << "mailgate " << MAILGATE_VERSION << "\n";
      return 0;
    }
  }
  if (args.empty()) {
    std::cerr << kUsage;
    return mailgate::cli::kExitUsage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "check-config") return mailgate::cli::check_config(args);
  if (command == "preview") return mailgate::cli::preview(args);
  if (command == "serve") return mailgate::cli::serve(args);
  if (command == "deliver") return mailgate::cli::deliver(args);
  if (command == "queue") return mailgate::cli::queue(args);
  std::cerr << "mailgate: unknown command '" << command << "'\n" << kUsage;
  return mailgate::cli::kExitUsage;
}
