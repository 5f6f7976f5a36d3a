// One line per event on stderr: "LEVEL event key=value key=value".
// Values with spaces or quotes are quoted. Never pass secrets, tokens or
// message bodies: nothing here can tell them apart from other strings.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace mailgate::log {

enum class Level { Debug, Info, Warn, Error };

using Field = std::pair<std::string_view, std::string>;

void event(Level level, std::string_view name, std::initializer_list<Field> fields = {});

inline void info(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Info, name, fields); }
inline void warn(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Warn, name, fields); }
inline void error(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Error, name, fields); }
inline void debug(std::string_view name, std::initializer_list<Field> fields = {}) { event(Level::Debug, name, fields); }

// Events below this level are dropped (default Info; MAILGATE_LOG=debug).
void set_min_level(Level level);

// Formats one line (without the newline); exposed for tests.
std::string format_line(Level level, std::string_view name, std::initializer_list<Field> fields);

}  // namespace mailgate::log
