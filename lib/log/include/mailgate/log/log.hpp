// One line per event on stderr: "LEVEL event key=value key=value", or with
// log.format json one JSON object per line for log shippers. Values with
// spaces or quotes are quoted; control characters, invalid UTF-8 and bidi
// controls from mail or servers are escaped, never written to a terminal.
// Never pass secrets, tokens or message bodies: nothing here can tell them
// apart from other strings.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace mailgate::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Text, Json };

using Field = std::pair<std::string_view, std::string>;

void event(Level level, std::string_view name, std::initializer_list<Field> fields = {});

inline void info(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Info, name, fields); }
inline void warn(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Warn, name, fields); }
inline void error(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Error, name, fields); }
inline void debug(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Debug, name, fields); }

// Events below this level are dropped (default Info; MAILGATE_LOG=debug).
void set_min_level(Level level);
// Text (default) or JSON lines: {"level":"info","event":"x","key":"value"}.
void set_format(Format format);

// Formats one line (without the newline); exposed for tests.
std::string format_line(Level level, std::string_view name, std::initializer_list<Field> fields);
std::string format_line(Format format, Level level, std::string_view name, std::initializer_list<Field> fields);

// `s` safe for a terminal: bytes below 0x20, DEL and invalid UTF-8 as \xNN,
// C1 controls and bidi/zero-width format characters (U+200B–U+200F,
// U+202A–U+202E, U+2066–U+2069, U+061C, U+FEFF) as \uXXXX, and a backslash
// as \\ so the escapes cannot be forged. Used for logs and `mailgate queue`.
std::string escape_controls(std::string_view s);

}  // namespace mailgate::log
