// key=value (or JSON) event logging; one write(2) per line so concurrent
// lines from several threads never interleave. Values come from mail and
// servers: whatever they hold, a line stays one line of printable text.
#include "mailgate/log/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
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
std::atomic<Format> g_format{Format::Text};

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "info";
}

void hex_byte(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c);
  out += buf;
}

// Code points that reorder or hide text on a terminal (Trojan Source).
bool is_format_control(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

// Length of a valid UTF-8 sequence at s[i] and its code point; 0 if invalid.
std::size_t utf8_at(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

bool needs_escape(std::string_view v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') return true;
    if (c >= 0x80) {
      std::uint32_t cp = 0;
      std::size_t n = utf8_at(v, i, cp);
      if (n == 0 || is_format_control(cp)) return true;
      i += n - 1;
    }
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  const std::string escaped = needs_escape(v) ? escape_controls(v) : std::string(v);
  bool needs_quotes = escaped.empty() || escaped.find_first_of(" \"=\\") != std::string::npos;
  if (!needs_quotes) {
    out += escaped;
    return;
  }
  out.push_back('"');
  for (char c : escaped) {
    if (c == '"') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

// A JSON string: valid UTF-8 (invalid bytes as the text \xNN), controls and
// bidi characters as \u escapes.
void append_json(std::string& out, std::string_view v) {
  out.push_back('"');
  for (std::size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    char buf[8];
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      std::uint32_t cp = 0;
      std::size_t n = utf8_at(v, i, cp);
      if (n == 0) {
        out += "\\\\x";  // the text \xNN: JSON has no bytes
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
      } else if (is_format_control(cp)) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
        out += buf;
        i += n - 1;
      } else {
        out.append(v.substr(i, n));
        i += n - 1;
      }
    }
  }
  out.push_back('"');
}

}  // namespace

std::string escape_controls(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      hex_byte(out, c);
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      std::uint32_t cp = 0;
      std::size_t n = utf8_at(s, i, cp);
      if (n == 0) {
        hex_byte(out, c);
      } else if (is_format_control(cp)) {
        char buf[12];
        std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(cp));
        out += buf;
        i += n - 1;
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
    }
  }
  return out;
}

void set_min_level(Level level) { g_min_level = level; }
void set_format(Format format) { g_format = format; }

std::string format_line(Format format, Level level, std::string_view name, std::initializer_list<Field> fields) {
  std::string line;
  if (format == Format::Json) {
    line = "{\"level\":\"";
    line += level_name(level);
    line += "\",\"event\":";
    append_json(line, name);
    for (const auto& [key, value] : fields) {
      line += ',';
      append_json(line, key);
      line += ':';
      append_json(line, value);
    }
    line += '}';
    return line;
  }
  line = level_name(level);
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

std::string format_line(Level level, std::string_view name, std::initializer_list<Field> fields) {
  return format_line(Format::Text, level, name, fields);
}

void event(Level level, std::string_view name, std::initializer_list<Field> fields) {
  if (level < g_min_level.load()) return;
  std::string line = format_line(g_format.load(), level, name, fields);
  line.push_back('\n');
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace mailgate::log
