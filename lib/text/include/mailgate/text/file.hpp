// Reading a whole file: config files, secret files, spooled messages.
#pragma once

#include <istream>
#include <optional>
#include <string>

namespace mailgate::text {

// The file's bytes; nullopt when it cannot be opened or read (the caller
// says what the file was for: errno is left as the failing call set it).
std::optional<std::string> read_file(const std::string& path);
// Everything left in a stream (stdin for `preview -`).
std::string read_stream(std::istream& in);

}  // namespace mailgate::text
