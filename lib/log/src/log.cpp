// key=value event logging; one write(2) per line so concurrent lines from
// several threads never interleave.
#include "mailgate/log/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace mailgate::log {
namespace {

Level initial_level() {
  const char* env = std::getenv("MAILGATE_LOG");
  if (env && std::strcmp(env, "debug") == 0) return Level::Debug;
  if (env && std::strcmp(env, "warn") == 0) return Level::Warn;
  return Level::Info;
}

std::atomic<Level> g_min_level{initial_level()};

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "info";
}

void append_value(std::string& out, std::string_view v) {
  bool needs_quotes = v.empty() || v.find_first_of(" \t\"=\\") != std::string_view::npos;
  if (!needs_quotes) {
    for (char c : v) out.push_back(static_cast<unsigned char>(c) < 32 ? '?' : c);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(static_cast<unsigned char>(c) < 32 ? ' ' : c);
  }
  out.push_back('"');
}

}  // namespace

void set_min_level(Level level) { g_min_level = level; }

std::string format_line(Level level, std::string_view name, std::initializer_list<Field> fields) {
  std::string line = level_name(level);
  line += ' ';
  line += name;
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    append_value(line, value);
  }
  return line;
}

void event(Level level, std::string_view name, std::initializer_list<Field> fields) {
  if (level < g_min_level.load()) return;
  std::string line = format_line(level, name, fields);
  line.push_back('\n');
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace mailgate::log
