// A tokenizer plus a small state machine over RFC 5322 §3.4 address lists.
#include "mailgate/mail/address.hpp"

#include "mailgate/mail/header_decode.hpp"
#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {
namespace {

enum class TokenKind { Word, Quoted, Comment, Angle, Special };

struct Token {
  TokenKind kind;
  std::string text;  // Special: the character
  bool space_before = false;
};

constexpr std::size_t kMaxCommentDepth = 32;

std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  bool space = false;
  while (i < s.size()) {
    char c = s[i];
    std::size_t before = tokens.size();
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
      space = true;
      continue;
    } else if (c == '"') {
      std::string text;
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        if (s[i] != '\r' && s[i] != '\n') text.push_back(s[i]);
        ++i;
      }
      ++i;
      tokens.push_back({TokenKind::Quoted, std::move(text)});
    } else if (c == '(') {
      std::string text;
      std::size_t depth = 0;
      while (i < s.size()) {
        char d = s[i];
        if (d == '\\' && i + 1 < s.size()) {
          text.push_back(s[i + 1]);
          i += 2;
          continue;
        }
        if (d == '(') {
          if (depth++ > 0 && depth < kMaxCommentDepth) text.push_back(d);
        } else if (d == ')') {
          if (--depth == 0) {
            ++i;
            break;
          }
          text.push_back(d);
        } else {
          text.push_back(d);
        }
        ++i;
      }
      tokens.push_back({TokenKind::Comment, std::move(text)});
    } else if (c == '<') {
      std::size_t close = s.find('>', i + 1);
      std::size_t end = close == std::string_view::npos ? s.size() : close;
      tokens.push_back({TokenKind::Angle, std::string(s.substr(i + 1, end - i - 1))});
      i = close == std::string_view::npos ? s.size() : close + 1;
    } else if (c == ',' || c == ';' || c == ':' || c == '@' || c == '.' || c == '>') {
      tokens.push_back({TokenKind::Special, std::string(1, c)});
      ++i;
    } else {
      std::size_t b = i;
      while (i < s.size() && std::string_view(" \t\r\n\"(<,;:@.>").find(s[i]) == std::string_view::npos) ++i;
      tokens.push_back({TokenKind::Word, std::string(s.substr(b, i - b))});
    }
    if (tokens.size() > before) tokens.back().space_before = space;
    space = false;
  }
  return tokens;
}

// "<@route,@route:user@domain>" → "user@domain"; white space removed.
std::string clean_angle_address(std::string_view a) {
  if (auto colon = a.find(':'); colon != std::string_view::npos && !a.empty() && a.front() == '@')
    a = a.substr(colon + 1);
  std::string out;
  int comment_depth = 0;  // "pete(his account)@silly.test(his host)"
  for (char c : a) {
    if (c == '(') ++comment_depth;
    else if (c == ')' && comment_depth > 0) --comment_depth;
    else if (comment_depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '"') out.push_back(c);
  }
  return out;
}

class MailboxBuilder {
 public:
  void add(const Token& t) {
    switch (t.kind) {
      case TokenKind::Angle:
        angle_ = clean_angle_address(t.text);
        has_angle_ = true;
        break;
      case TokenKind::Comment:
        if (comment_.empty()) comment_ = t.text;
        break;
      case TokenKind::Special:
        if (t.text == "@" || t.text == ".") {
          bare_ += t.text;
          append_to_phrase(t);
        }
        break;
      case TokenKind::Word:
      case TokenKind::Quoted:
        bare_ += t.text;
        // A quoted word may carry encoded-words (Outlook): the phrase is
        // decoded as a whole later, quoted or not.
        append_to_phrase(t);
        if (t.kind == TokenKind::Quoted) bare_is_address_ = false;
        break;
    }
  }

  void finish(std::vector<Mailbox>& out) {
    Mailbox m;
    if (has_angle_) {
      m.address = angle_;
      m.name = decode_header_text(phrase_);
    } else if (bare_is_address_ && bare_.find('@') != std::string::npos) {
      m.address = bare_;
      m.name = decode_header_text(comment_);  // "jane@x (Jane Doe)"
    } else if (bare_is_address_ && !bare_.empty()) {
      m.address = bare_;  // local-only, e.g. "MAILER-DAEMON"
    }
    m.name = fold_whitespace(m.name);
    if (m.name.size() >= 2 && (m.name.front() == '\'' && m.name.back() == '\''))
      m.name = m.name.substr(1, m.name.size() - 2);  // 'Jane Doe' as some clients write it
    if (!m.address.empty()) out.push_back(std::move(m));
    *this = MailboxBuilder{};
  }

  void drop_phrase_as_group_name() { *this = MailboxBuilder{}; }

 private:
  // Words keep the spacing they had in the header ("John Q. Public").
  void append_to_phrase(const Token& t) {
    if (!phrase_.empty() && t.space_before) phrase_ += ' ';
    phrase_ += t.text;
  }

  std::string phrase_, bare_, angle_, comment_;
  bool has_angle_ = false;
  bool bare_is_address_ = true;
};

}  // namespace

std::vector<Mailbox> parse_address_list(std::string_view raw) {
  std::vector<Mailbox> out;
  MailboxBuilder current;
  for (const Token& t : tokenize(raw)) {
    if (t.kind == TokenKind::Special && (t.text == "," || t.text == ";")) {
      current.finish(out);
    } else if (t.kind == TokenKind::Special && t.text == ":") {
      current.drop_phrase_as_group_name();  // "Team: a@x, b@y;"
    } else {
      current.add(t);
    }
  }
  current.finish(out);
  return out;
}

}  // namespace mailgate::mail
