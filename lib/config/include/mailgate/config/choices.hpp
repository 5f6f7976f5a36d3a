// The user-facing choices of the configuration file (an enum per key that
// takes one of a few words) and their words, declared once. The parser reads
// a word through the table, check-config prints it through the same table,
// and the libraries that act on a choice (imap's security, auth and
// after_import, mail's sender) use these types instead of a copy of their
// own: a new enumerator is then added in one place and -Wswitch finds every
// translation that must learn it.
//
// Header-only on purpose (target mailgate::config_choices): lib/mail and
// lib/imap include it without linking the YAML parser, so the fuzz targets
// built on them keep their link line.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace mailgate::config {

enum class MessengerMode { Live, DryRun };
enum class SmtpProtocol { Smtp, Lmtp };
enum class ImapSecurity { Tls, StartTls, None };
enum class ImapAuth { Auto, Login, Plain, XOAuth2 };  // auto: PLAIN when offered, else LOGIN
enum class AfterImport { Seen, Move, Delete };      // move takes a folder: "move:FOLDER"
enum class SenderField { From, ReplyTo };           // which header names the ticket's user
enum class LogFormat { Text, Json };
// What happens to a kind of mail, or to mail a route matches.
enum class MailAction { Ticket, Ignore, Hold };
enum class ThreadAllow { Creator, Any };
enum class ClosedTicket { Reopen, NewTicket, Reply };
enum class Unauthenticated { Accept, Hold };

template <class Enum>
struct Word {
  Enum value;
  std::string_view word;
};

// Words<E>::table lists every enumerator of E once, in the order error
// messages name them.
template <class Enum>
struct Words;

template <>
struct Words<MessengerMode> {
  static constexpr std::array<Word<MessengerMode>, 2> table{{{MessengerMode::Live, "live"},
                                                             {MessengerMode::DryRun, "dry-run"}}};
};
template <>
struct Words<SmtpProtocol> {
  static constexpr std::array<Word<SmtpProtocol>, 2> table{{{SmtpProtocol::Smtp, "smtp"}, {SmtpProtocol::Lmtp, "lmtp"}}};
};
template <>
struct Words<ImapSecurity> {
  static constexpr std::array<Word<ImapSecurity>, 3> table{
      {{ImapSecurity::Tls, "tls"}, {ImapSecurity::StartTls, "starttls"}, {ImapSecurity::None, "none"}}};
};
template <>
struct Words<ImapAuth> {
  static constexpr std::array<Word<ImapAuth>, 4> table{
      {{ImapAuth::Auto, "auto"}, {ImapAuth::Login, "login"}, {ImapAuth::Plain, "plain"}, {ImapAuth::XOAuth2, "xoauth2"}}};
};
template <>
struct Words<AfterImport> {
  static constexpr std::array<Word<AfterImport>, 3> table{
      {{AfterImport::Seen, "seen"}, {AfterImport::Delete, "delete"}, {AfterImport::Move, "move"}}};
};
template <>
struct Words<SenderField> {
  static constexpr std::array<Word<SenderField>, 2> table{{{SenderField::From, "from"}, {SenderField::ReplyTo, "reply-to"}}};
};
template <>
struct Words<LogFormat> {
  static constexpr std::array<Word<LogFormat>, 2> table{{{LogFormat::Text, "text"}, {LogFormat::Json, "json"}}};
};
template <>
struct Words<MailAction> {
  static constexpr std::array<Word<MailAction>, 3> table{
      {{MailAction::Ticket, "ticket"}, {MailAction::Ignore, "ignore"}, {MailAction::Hold, "hold"}}};
};
template <>
struct Words<ThreadAllow> {
  static constexpr std::array<Word<ThreadAllow>, 2> table{{{ThreadAllow::Creator, "creator"}, {ThreadAllow::Any, "any"}}};
};
template <>
struct Words<ClosedTicket> {
  static constexpr std::array<Word<ClosedTicket>, 3> table{
      {{ClosedTicket::Reopen, "reopen"}, {ClosedTicket::NewTicket, "new_ticket"}, {ClosedTicket::Reply, "reply"}}};
};
template <>
struct Words<Unauthenticated> {
  static constexpr std::array<Word<Unauthenticated>, 2> table{
      {{Unauthenticated::Accept, "accept"}, {Unauthenticated::Hold, "hold"}}};
};

template <class Enum>
concept Choice = requires { Words<Enum>::table; };

// The word of a value, as the file spells it ("dry-run", "new_ticket").
template <Choice Enum>
constexpr std::string_view to_string(Enum value) {
  for (const auto& w : Words<Enum>::table)
    if (w.value == value) return w.word;
  return "?";  // unreachable while every table lists every enumerator (settings_test checks)
}

// The value a word names; nullopt for any other word (case-sensitive, as
// the file has always been read).
template <Choice Enum>
constexpr std::optional<Enum> from_string(std::string_view word) {
  for (const auto& w : Words<Enum>::table)
    if (w.word == word) return w.value;
  return std::nullopt;
}

// "tls, starttls or none": the words for an error message.
template <Choice Enum>
std::string word_list() {
  std::string out;
  const auto& table = Words<Enum>::table;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (i > 0) out += i + 1 == table.size() ? " or " : ", ";
    out += table[i].word;
  }
  return out;
}

}  // namespace mailgate::config
