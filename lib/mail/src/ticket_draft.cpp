// Walks the parsed MIME tree twice: first to render the body (choosing
// alternatives, resolving cid: images, keeping every inline body part of a
// multipart/mixed in order), then to collect every part not consumed by the
// body as an attachment.
#include "mailgate/mail/ticket_draft.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>

#include "mailgate/mail/charset.hpp"
#include "mailgate/mail/header_block.hpp"
#include "mailgate/mail/header_decode.hpp"
#include "mailgate/mail/html.hpp"
#include "mailgate/mail/quote_strip.hpp"
#include "mailgate/mail/text_util.hpp"
#include "mailgate/mail/transfer_encoding.hpp"
#include "mailgate/text/encoding.hpp"

namespace mailgate::mail {
namespace {

constexpr std::size_t kMaxFileNameBytes = 200;

std::string strip_angles(std::string_view id) {
  id = trim(id);
  if (!id.empty() && id.front() == '<') id.remove_prefix(1);
  if (auto gt = id.find('>'); gt != std::string_view::npos) id = id.substr(0, gt);
  return std::string(trim(id));
}

std::string extension_for(std::string_view content_type) {
  static const std::map<std::string_view, std::string_view> kExtensions = {
      {"image/png", "png"},        {"image/jpeg", "jpg"},          {"image/jpg", "jpg"},
      {"image/pjpeg", "jpg"},      {"image/gif", "gif"},           {"image/bmp", "bmp"},
      {"image/webp", "webp"},      {"image/tiff", "tif"},          {"image/svg+xml", "svg"},
      {"image/heic", "heic"},      {"application/pdf", "pdf"},     {"application/zip", "zip"},
      {"application/json", "json"},{"application/xml", "xml"},     {"text/xml", "xml"},
      {"text/plain", "txt"},       {"text/html", "html"},          {"text/csv", "csv"},
      {"text/calendar", "ics"},    {"application/ics", "ics"},     {"text/vcard", "vcf"},
      {"text/x-vcard", "vcf"},     {"message/rfc822", "eml"},      {"message/delivery-status", "txt"},
      {"text/rfc822-headers", "txt"}, {"application/pgp-signature", "asc"},
      {"application/pkcs7-signature", "p7s"}, {"application/x-pkcs7-signature", "p7s"},
      {"application/msword", "doc"}, {"application/vnd.ms-excel", "xls"},
      {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
      {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"},
      {"application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"},
      {"application/ms-tnef", "dat"}, {"application/vnd.ms-tnef", "dat"},
      {"audio/mpeg", "mp3"},       {"video/mp4", "mp4"},           {"application/gzip", "gz"},
  };
  auto it = kExtensions.find(content_type);
  return it == kExtensions.end() ? "bin" : std::string(it->second);
}

// Bidirectional controls (UTF-8): they make "invoice\u202Efdp.exe" read as
// "invoiceexe.pdf". LRM, RLM, ALM, LRE..RLO, LRI..PDI.
constexpr std::string_view kBidiControls[] = {"\u200E", "\u200F", "\u061C", "\u202A", "\u202B", "\u202C",
                                              "\u202D", "\u202E", "\u2066", "\u2067", "\u2068", "\u2069"};
// Characters that look like a slash or backslash: a name must not look
// like a path it is not.
constexpr std::string_view kLookAlikeSlashes[] = {"\u2215", "\u2044", "\uFF0F", "\u29F8", "\u2571", "\u2216",
                                                  "\uFF3C", "\u29F9", "\uFE68", "\u2572", "\u29F5"};

// Builds a new string (in-place std::string::replace trips g++ 12's
// -Wrestrict false positive in Release builds).
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  std::size_t at = 0;
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, at)) {
    out.append(s, at, p - at);
    out.append(to);
    at = p + from.size();
  }
  out.append(s, at, std::string::npos);
  s = std::move(out);
}

// A file name safe to hand on: no directories, no control characters, no
// bidi controls, look-alike slashes as "_", not hidden, bounded length (cut
// on a UTF-8 boundary, extension kept).
std::string safe_file_name(std::string name) {
  if (auto slash = name.find_last_of("/\\"); slash != std::string::npos) name = name.substr(slash + 1);
  for (auto bidi : kBidiControls) replace_all(name, bidi, "");
  for (auto slash : kLookAlikeSlashes) replace_all(name, slash, "_");
  std::string clean;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 32 || u == 127) continue;
    clean.push_back(c);
  }
  clean = fold_whitespace(clean);
  while (!clean.empty() && (clean.front() == '.' || clean.front() == ' ')) clean.erase(0, 1);
  if (clean.size() > kMaxFileNameBytes) {
    std::string ext;
    if (auto dot = clean.rfind('.'); dot != std::string::npos && clean.size() - dot <= 10) ext = clean.substr(dot);
    std::size_t keep = kMaxFileNameBytes - ext.size();
    while (keep > 0 && (static_cast<unsigned char>(clean[keep]) & 0xC0) == 0x80) --keep;
    clean = clean.substr(0, keep) + ext;
  }
  return clean;
}

std::string human_size(std::size_t bytes) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// The ids of a References (or In-Reply-To) field without <>, in order. Ids
// are taken between angle brackets; a field with none (some clients
// separate bare ids by spaces) gives its words that contain '@'. Over
// kMaxReferences, the first and the newest are kept.
std::vector<std::string> message_ids(std::string_view field) {
  std::vector<std::string> ids;
  const bool bracketed = field.find('<') != std::string_view::npos;
  std::size_t pos = 0;
  while (pos < field.size()) {
    std::string id;
    if (bracketed) {
      std::size_t lt = field.find('<', pos);
      if (lt == std::string_view::npos) break;
      std::size_t gt = field.find('>', lt);
      if (gt == std::string_view::npos) break;
      for (char c : field.substr(lt + 1, gt - lt - 1))  // folding may have put whitespace inside
        if (!std::isspace(static_cast<unsigned char>(c))) id.push_back(c);
      pos = gt + 1;
    } else {
      pos = field.find_first_not_of(" \t\r\n", pos);
      if (pos == std::string_view::npos) break;
      std::size_t end = std::min(field.find_first_of(" \t\r\n", pos), field.size());
      if (field.substr(pos, end - pos).find('@') != std::string_view::npos) id = field.substr(pos, end - pos);
      pos = end;
    }
    if (id.empty()) continue;
    if (ids.size() == kMaxReferences) ids.erase(ids.begin() + 1);  // keep the root, drop the oldest after it
    ids.push_back(std::move(id));
  }
  return ids;
}

class DraftBuilder {
 public:
  DraftBuilder(const ParsedMessage& msg, const DraftOptions& options, std::chrono::steady_clock::time_point deadline)
      : msg_(msg), options_(options) {
    budget_.deadline = deadline;
    budget_.cancel = options.cancel.get();
    index_content_ids(msg.root);
  }

  // Set when the draft ran out of budget (or was cancelled): it is then
  // incomplete and must not become a ticket.
  DraftFailure failure() const { return failure_; }
  const std::string& failure_reason() const { return failure_reason_; }

  TicketDraft build() {
    const MimePart& root = msg_.root;
    draft_.title = decode_header_text(root.header("Subject"));
    draft_.title = fold_whitespace(draft_.title);
    if (draft_.title.empty()) draft_.title = "(no subject)";
    draft_.message_id = strip_angles(root.header("Message-ID"));
    draft_.in_reply_to = strip_angles(root.header("In-Reply-To"));
    draft_.references = message_ids(root.header("References"));
    read_sender_facts();
    choose_user();

    std::string body = render(root);
    collect_attachments(root);
    for (const auto& [reason, count] : unnamed_skips_)
      draft_.skipped.push_back({std::string("(").append(std::to_string(count)).append(" more)"), reason});
    for (const auto& t : msg_.truncations) draft_.skipped.push_back({"(message structure)", t});
    // The API needs a message; a scan-to-mail PDF has none of its own.
    if (trim(body).empty()) body = "<p><em>(no message text)</em></p>";
    draft_.message = body + skipped_note();
    draft_.reply_message = options_.strip_quoted ? reply_body(body) + skipped_note() : draft_.message;
    draft_.signals = signals();
    if (!draft_.signals.empty()) draft_.ignored = draft_.signals.front().reason;
    return std::move(draft_);
  }

 private:
  // The body as a reply to a ticket carries it: the quoted history stripped
  // within the draft's budget. Out of time or cancelled fails the draft as
  // the sanitiser does; too complex to parse again keeps the whole body.
  std::string reply_body(const std::string& body) {
    if (out_of_budget()) return body;
    SanitizedHtml r = strip_quoted_html(body, budget_);
    if (r.failure == HtmlFailure::Cancelled) fail(DraftFailure::Cancelled, r.error);
    else if (r.failure == HtmlFailure::OverTime) fail(DraftFailure::OverBudget, "quote stripping ran over " + time_budget());
    return r.failure == HtmlFailure::None ? std::move(r.html) : body;
  }

  // ---- sender ---------------------------------------------------------------
  // Facts choose_user and the policy need: the decoded header, the list the
  // mail came through, and our MX's authentication verdict.
  void read_sender_facts() {
    for (const auto& f : msg_.root.headers)
      draft_.headers.push_back({f.name, fold_whitespace(decode_header_text(f.value))});
    draft_.list_id = ascii_lower(strip_angles(msg_.root.header("List-Id")));
    draft_.trusted_list = !draft_.list_id.empty() &&
                          std::find(options_.trusted_lists.begin(), options_.trusted_lists.end(), draft_.list_id) !=
                              options_.trusted_lists.end();
    draft_.dmarc = trusted_dmarc_result();
  }

  // Our MX puts its Authentication-Results on top of what it received, so
  // the topmost one with our authserv-id is its verdict; anything with our
  // id further down came with the mail and may be forged (RFC 8601 §5).
  // Fields above it were added after our MX, by our own hops.
  std::string trusted_dmarc_result() const {
    if (options_.authserv_id.empty()) return {};
    for (const auto& f : msg_.root.headers) {
      if (!iequals(f.name, "Authentication-Results")) continue;
      const std::string value = without_comments(f.value);
      auto clauses = split_clauses(value);
      std::string_view id = clauses.empty() ? std::string_view() : trim(clauses.front());
      id = id.substr(0, id.find_first_of(" \t\r\n"));
      if (!iequals(id, options_.authserv_id)) continue;
      for (std::size_t i = 1; i < clauses.size(); ++i) {
        std::string_view c = trim(clauses[i]);
        if (istarts_with(c, "dmarc=")) return ascii_lower(c.substr(6, c.find_first_of(" \t\r\n") - 6));
      }
      return "none";  // our MX said nothing about DMARC
    }
    return {};
  }

  // RFC 5322 comments "(...)", nested, removed; quoted strings kept as is.
  static std::string without_comments(std::string_view v) {
    std::string out;
    int depth = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
      char c = v[i];
      if (c == '\\' && i + 1 < v.size()) {
        if (depth == 0) out.append(v.substr(i, 2));
        ++i;
        continue;
      }
      if (depth == 0 && c == '"') quoted = !quoted;
      if (!quoted && c == '(') ++depth;
      if (depth == 0) out.push_back(c);
      if (!quoted && c == ')' && depth > 0) --depth;
    }
    return out;
  }

  static std::vector<std::string_view> split_clauses(std::string_view v) {
    std::vector<std::string_view> out;
    for (std::size_t at = 0; at <= v.size();) {
      std::size_t semi = std::min(v.find(';', at), v.size());
      out.push_back(v.substr(at, semi - at));
      at = semi + 1;
    }
    return out;
  }

  // The fields the user is read from, best first. X-Original-From and kin
  // (a list rewriting From for DMARC: "'Jane' via Support" <the list>) are
  // believed only for a trusted list: anyone can write them.
  std::vector<std::string_view> user_fields() const {
    std::vector<std::string_view> order = {"From", "Sender", "Reply-To"};
    if (options_.sender == SenderPreference::ReplyTo) order = {"Reply-To", "From", "Sender"};
    if (!draft_.trusted_list) return order;
    if (from_is_rewritten()) order.insert(order.begin(), "Reply-To");
    order.insert(order.begin(), {"X-Original-From", "X-Original-Sender"});
    return order;
  }

  bool from_is_rewritten() const {
    for (const auto& m : parse_address_list(msg_.root.header("From")))
      if (m.name.find(" via ") != std::string::npos) return true;
    return false;
  }

  void choose_user() {
    for (auto field : user_fields()) {
      auto boxes = parse_address_list(msg_.root.header(field));
      auto it = std::find_if(boxes.begin(), boxes.end(),
                             [](const Mailbox& m) { return m.address.find('@') != std::string::npos; });
      if (it == boxes.end()) continue;
      draft_.user = *it;
      draft_.user_field = std::string(field);
      break;
    }
    if (draft_.user.name.empty()) draft_.user.name = name_from_other_fields(draft_.user.address);
    if (draft_.user.name.empty()) draft_.user.name = draft_.user.address.substr(0, draft_.user.address.find('@'));
  }

  // The display name given to `address` in From, Reply-To or Sender, or the
  // author's name in a list-rewritten From ("'Carla Rossi' via Support").
  std::string name_from_other_fields(const std::string& address) const {
    for (auto field : {"From", "Reply-To", "Sender"})
      for (const auto& m : parse_address_list(msg_.root.header(field)))
        if (iequals(m.address, address) && !m.name.empty()) return m.name;
    for (const auto& m : parse_address_list(msg_.root.header("From"))) {
      std::size_t via = m.name.rfind(" via ");
      if (via == std::string::npos || via == 0) continue;
      std::string name = m.name.substr(0, via);
      if (name.size() >= 2 && name.front() == '\'' && name.back() == '\'') name = name.substr(1, name.size() - 2);
      return name;
    }
    return {};
  }

  // ---- policy signals -------------------------------------------------------
  // Every kind this mail is, in design.md's order (own X-Loop, bounce,
  // auto-reply, bulk, unauthenticated); what each means is the config's.
  std::vector<MailSignal> signals() const {
    std::vector<MailSignal> out;
    auto add = [&out](const char* kind, std::optional<std::string> reason) {
      if (reason) out.push_back({kind, std::move(*reason)});
    };
    add("loop", loop_reason());
    add("bounce", bounce_reason());
    add("auto_reply", auto_reply_reason());
    add("bulk", bulk_reason());
    if (draft_.dmarc == "fail")
      add("unauthenticated", "unauthenticated sender (dmarc=fail in Authentication-Results of " + options_.authserv_id + ")");
    if (draft_.user.address.empty())
      add("no_sender", "no sender address (From, Sender and Reply-To missing or unreadable)");
    return out;
  }

  std::optional<std::string> loop_reason() const {
    for (const auto& f : msg_.root.headers)
      if (iequals(f.name, "X-Loop") && ascii_lower(f.value).find(ascii_lower(options_.loop_id)) != std::string::npos)
        return "mail loop (our own X-Loop: " + options_.loop_id + ")";
    return std::nullopt;
  }

  std::optional<std::string> bounce_reason() const {
    const MimePart& r = msg_.root;
    if (r.find("Return-Path") && strip_angles(r.header("Return-Path")).empty())
      return "bounce (null sender, Return-Path: <>)";
    std::string local = ascii_lower(draft_.user.address.substr(0, draft_.user.address.find('@')));
    if (local == "mailer-daemon" || local == "postmaster") return "bounce (sender " + draft_.user.address + ")";
    if (r.content_type.value == "multipart/report") return "bounce or notification (multipart/report)";
    return std::nullopt;
  }

  std::optional<std::string> auto_reply_reason() const {
    const MimePart& r = msg_.root;
    std::string auto_submitted = ascii_lower(trim(r.header("Auto-Submitted")));
    if (r.find("Auto-Submitted") && auto_submitted.rfind("no", 0) != 0)
      return "auto-submitted message (Auto-Submitted: " + shown(auto_submitted) + ")";
    for (auto f : {"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response-Suppress"})
      if (r.find(f)) return std::string("auto-reply (") + f + " header)";
    if (precedence() == "auto_reply") return "auto-reply (Precedence: auto_reply)";
    return std::nullopt;
  }

  // A trusted list's posts are direct mail from their author.
  std::optional<std::string> bulk_reason() const {
    if (draft_.trusted_list) return std::nullopt;
    std::string p = precedence();
    if (p == "bulk" || p == "junk" || p == "list") return "bulk mail (Precedence: " + p + ")";
    if (!draft_.list_id.empty()) return "list mail (List-Id: " + shown(draft_.list_id) + ", not a trusted list)";
    return std::nullopt;
  }

  std::string precedence() const { return ascii_lower(trim(msg_.root.header("Precedence"))); }

  // A header value inside a reason: folded, and short (it is logged).
  static std::string shown(std::string_view value) {
    constexpr std::size_t kMaxShown = 100;
    std::string v = fold_whitespace(value);
    if (v.size() > kMaxShown) v = v.substr(0, utf8_valid_prefix(v.substr(0, kMaxShown))) + "…";
    return v;
  }

  // ---- body -----------------------------------------------------------------
  static bool is_attachment_disposition(const MimePart& p) {
    return p.disposition.value == "attachment";
  }
  static bool has_file_name(const MimePart& p) {
    return !p.disposition.param("filename").empty() ||
           !p.content_type.param("name").empty();
  }
  static bool is_text_body(const MimePart& p) {
    const auto& t = p.content_type.value;
    return (t == "text/plain" || t == "text/html") && !is_attachment_disposition(p) && !has_file_name(p);
  }
  static bool is_inline_image(const MimePart& p) {
    if (p.content_type.value.rfind("image/", 0) != 0) return false;
    return p.disposition.value == "inline";
  }
  // Can this part stand as (part of) the visible body?
  static bool is_renderable(const MimePart& p) {
    const auto& t = p.content_type.value;
    if (t == "multipart/alternative" || t == "multipart/related") return !is_attachment_disposition(p);
    return is_text_body(p);
  }

  std::string decoded_text(const MimePart& p) {
    std::string bytes = decode_transfer_encoding(p.body, p.header("Content-Transfer-Encoding"));
    std::string charset = p.content_type.param("charset");
    if (charset.empty() && p.content_type.value == "text/html") charset = sniff_html_charset(bytes);
    return to_utf8(bytes, charset);
  }

  // Checked between parts; the HTML sanitiser checks inside its loops.
  bool out_of_budget() {
    if (failure_ != DraftFailure::None) return true;
    if (budget_.cancel && budget_.cancel->load(std::memory_order_relaxed)) {
      fail(DraftFailure::Cancelled, "cancelled (shutting down)");
    } else if (std::chrono::steady_clock::now() > budget_.deadline) {
      fail(DraftFailure::OverBudget, "drafting ran over " + time_budget());
    }
    return failure_ != DraftFailure::None;
  }

  std::string time_budget() const {
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%g", static_cast<double>(options_.max_processing_time.count()) / 1000.0);
    return std::string("mail.max_processing_time (") + seconds + " s)";
  }

  void fail(DraftFailure f, std::string reason) {
    if (failure_ != DraftFailure::None) return;
    failure_ = f;
    failure_reason_ = std::move(reason);
  }

  std::string render_leaf(const MimePart& p) {
    consumed_.insert(&p);
    if (out_of_budget()) return {};
    std::string text = decoded_text(p);
    if (p.content_type.value == "text/html") {
      auto r = sanitize_html(text, [this](std::string_view src) { return resolve_image(src); }, budget_);
      if (r.failure == HtmlFailure::Cancelled) fail(DraftFailure::Cancelled, r.error);
      else if (r.failure == HtmlFailure::OverTime) fail(DraftFailure::OverBudget, "HTML sanitising ran over " + time_budget());
      else if (r.failure != HtmlFailure::None) fail(DraftFailure::OverBudget, r.error);
      return std::move(r.html);
    }
    bool flowed = iequals(p.content_type.param("format"), "flowed");
    bool delsp = iequals(p.content_type.param("delsp"), "yes");
    return text_to_html(text, flowed, delsp);
  }

  std::string render(const MimePart& p) {
    const auto& t = p.content_type.value;
    if (t == "multipart/alternative") return render_alternative(p);
    if (t == "multipart/related") return render_related(p);
    if (p.is_multipart()) return render_mixed(p);
    if (is_renderable(p)) return render_leaf(p);
    return {};  // a lone attachment (PDF as the whole message): no body
  }

  // The richest alternative we can show: HTML (possibly inside related)
  // before text. The others are consumed unless they carry something a
  // text/html rendering does not (text/calendar invitations), which then
  // become attachments.
  std::string render_alternative(const MimePart& p) {
    const MimePart* best = nullptr;
    int best_rank = -1;
    for (const auto& c : p.children) {
      int rank = -1;
      if (c.content_type.value == "text/plain" && !is_attachment_disposition(c)) rank = 1;
      if (c.content_type.value == "multipart/alternative" || c.content_type.value == "multipart/mixed") rank = 2;
      if (c.content_type.value == "text/html" && !is_attachment_disposition(c)) rank = 3;
      if (c.content_type.value == "multipart/related") rank = 3;
      if (rank >= best_rank && rank >= 0) {
        best = &c;
        best_rank = rank;
      }
    }
    for (const auto& c : p.children)
      if (&c != best && (c.content_type.value == "text/plain" || c.content_type.value == "text/html"))
        consumed_.insert(&c);
    return best ? render(*best) : std::string();
  }

  // RFC 2387: the root (named by start=, else the first part) is the body;
  // the others are resources it references by cid:.
  std::string render_related(const MimePart& p) {
    if (p.children.empty()) return {};
    const MimePart* root = &p.children.front();
    if (std::string start = strip_angles(p.content_type.param("start")); !start.empty())
      for (const auto& c : p.children)
        if (iequals(strip_angles(c.header("Content-ID")), start)) root = &c;
    return render(*root);
  }

  // Every inline body part in order; inline images in between are shown
  // where they stand (Apple Mail, iOS: text, image, text).
  std::string render_mixed(const MimePart& p) {
    std::string out;
    for (const auto& c : p.children) {
      std::string piece;
      if (c.is_multipart() && !c.children.empty()) {
        piece = render(c);  // nested containers render in place
      } else if (is_text_body(c)) {
        piece = render_leaf(c);
      } else if (is_inline_image(c)) {
        if (auto ref = add_media(c, /*inline_image=*/true)) piece = "<p><img src=\"att:" + *ref + "\"/></p>";
      }
      if (!piece.empty()) out += (out.empty() ? "" : "\n") + piece;
    }
    return out;
  }

  // ---- media ----------------------------------------------------------------
  void index_content_ids(const MimePart& p) {
    if (std::string cid = strip_angles(p.header("Content-ID")); !cid.empty() && !p.is_multipart())
      by_content_id_.emplace(ascii_lower(cid), &p);
    for (const auto& c : p.children) index_content_ids(c);
  }

  std::optional<std::string> resolve_image(std::string_view src) {
    if (istarts_with(src, "cid:")) {
      std::string cid = ascii_lower(percent_decode(src.substr(4)));
      auto it = by_content_id_.find(strip_angles(cid));
      if (it == by_content_id_.end()) return std::nullopt;
      if (consumed_.count(it->second) && !media_of_.count(it->second)) return std::nullopt;  // skipped
      // SVG is active content (scripts, remote loads): never shown inline;
      // the part stays an attachment.
      if (it->second->content_type.value == "image/svg+xml") return std::nullopt;
      if (auto known = media_of_.find(it->second); known != media_of_.end()) {
        draft_.media[known->second].inline_image = true;
        return "att:" + draft_.media[known->second].ref;
      }
      if (auto ref = add_media(*it->second, /*inline_image=*/true)) return "att:" + *ref;
      return std::nullopt;
    }
    if (istarts_with(src, "data:image/")) return add_data_uri_image(src);
    return std::nullopt;  // remote: never loaded
  }

  // <img src="data:image/png;base64,..."> becomes an uploaded inline image,
  // so the ticket message stays small and the image is kept. Only raster
  // types (an SVG would be active content), and the same image data used
  // many times is uploaded once.
  std::optional<std::string> add_data_uri_image(std::string_view src) {
    static constexpr std::string_view kInlineTypes[] = {"image/png", "image/jpeg", "image/jpg", "image/pjpeg",
                                                        "image/gif", "image/webp", "image/bmp"};
    std::size_t comma = src.find(',');
    if (comma == std::string_view::npos) return std::nullopt;
    std::string meta = ascii_lower(src.substr(5, comma - 5));
    if (meta.find(";base64") == std::string::npos) return std::nullopt;
    std::string type = meta.substr(0, meta.find(';'));
    if (std::find(std::begin(kInlineTypes), std::end(kInlineTypes), type) == std::end(kInlineTypes)) {
      skip_named("image." + extension_for(type), type == "image/svg+xml"
                                                      ? "SVG image not shown inline (active content)"
                                                      : "inline image of type " + type + " not shown");
      return std::nullopt;
    }
    std::string bytes = decode_base64(src.substr(comma + 1));
    std::string digest = text::sha256_hex(bytes);
    if (auto same = inline_by_digest_.find(digest); same != inline_by_digest_.end()) return "att:" + same->second;
    std::string ref = add_bytes(std::move(bytes), type, "", "", true);
    if (ref.empty()) return std::nullopt;
    inline_by_digest_.emplace(std::move(digest), ref);
    return "att:" + ref;
  }

  std::string media_limit_reason() const {
    return "over the limit of " + std::to_string(options_.max_media) + " uploads per mail (mail.max_media)";
  }

  // A skip named in the ticket; past kMaxNamedSkips only counted.
  void skip_named(std::string name, std::string reason) {
    if (named_budget_skips_ >= kMaxNamedSkips) {
      ++unnamed_skips_[reason];
      return;
    }
    ++named_budget_skips_;
    draft_.skipped.push_back({std::move(name), std::move(reason)});
  }

  std::string file_name_of(const MimePart& p, const std::string& bytes) {
    std::string name = p.disposition.param("filename");
    if (name.empty()) name = p.content_type.param("name");
    if (name.empty() && p.content_type.value == "message/rfc822") {
      MimePart inner;
      parse_header_block(bytes, inner, options_.limits);
      std::string subject = fold_whitespace(decode_header_text(inner.header("Subject")));
      // A subject is not a path: its slashes must not be taken as folders.
      std::replace(subject.begin(), subject.end(), '/', '-');
      std::replace(subject.begin(), subject.end(), '\\', '-');
      name = (subject.empty() ? "forwarded-message" : subject) + ".eml";
    }
    if (name.empty() && (p.content_type.value == "application/ms-tnef" ||
                         p.content_type.value == "application/vnd.ms-tnef"))
      name = "winmail.dat";
    return safe_file_name(name);
  }

  std::optional<std::string> add_media(const MimePart& p, bool inline_image) {
    consumed_.insert(&p);
    if (out_of_budget()) return std::nullopt;
    if (inline_image && p.content_type.value == "image/svg+xml") {
      consumed_.erase(&p);  // never inline: collected as an attachment instead
      return std::nullopt;
    }
    std::string bytes = decode_transfer_encoding(p.body, p.header("Content-Transfer-Encoding"));
    std::string name = file_name_of(p, bytes);
    std::string ref = add_bytes(std::move(bytes), p.content_type.value, name,
                                strip_angles(p.header("Content-ID")), inline_image);
    if (ref.empty()) return std::nullopt;
    media_of_[&p] = draft_.media.size() - 1;
    return ref;
  }

  // Returns the new ref, or "" when the part is skipped (too large, empty).
  std::string add_bytes(std::string bytes, const std::string& content_type, std::string name,
                        std::string content_id, bool inline_image) {
    std::size_t n = draft_.media.size() + 1;
    if (name.empty())  // parts skipped for max_media count on, so each has its own name
      name = std::string(content_type.rfind("image/", 0) == 0 ? "image-" : "attachment-") +
             std::to_string(n + media_limit_skips_) + "." + extension_for(content_type);
    if (bytes.size() > options_.max_media_bytes) {
      draft_.skipped.push_back({name, "larger than " + std::to_string(options_.max_media_bytes / (1024 * 1024)) +
                                          " MB media limit (" + human_size(bytes.size()) + ")"});
      return {};
    }
    if (bytes.empty()) {
      draft_.skipped.push_back({name, "empty attachment"});
      return {};
    }
    if (draft_.media.size() >= options_.max_media) {
      ++media_limit_skips_;
      skip_named(std::move(name), media_limit_reason());
      return {};
    }
    MediaItem m;
    m.ref = "media-" + std::to_string(n);
    m.name = std::move(name);
    m.content_type = content_type;
    m.sha256 = text::sha256_hex(bytes);
    m.bytes = std::move(bytes);
    m.inline_image = inline_image;
    m.content_id = std::move(content_id);
    draft_.media.push_back(std::move(m));
    return draft_.media.back().ref;
  }

  void collect_attachments(const MimePart& p) {
    if (p.is_multipart()) {
      for (const auto& c : p.children) collect_attachments(c);
      return;
    }
    if (consumed_.count(&p) || media_of_.count(&p)) return;
    // A text part outside any body context (e.g. the second text/plain of
    // a multipart/alternative we did not choose) is consumed there; what is
    // left here is a real attachment.
    add_media(p, false);
  }

  std::string skipped_note() const {
    std::vector<const SkippedPart*> visible;
    for (const auto& s : draft_.skipped)
      if (s.reason != "empty attachment") visible.push_back(&s);
    if (visible.empty()) return {};
    std::string note = "\n<p><em>Not imported by mailgate:</em></p>\n<ul>";
    for (const auto* s : visible) note += "<li>" + html_escape(s->name) + ": " + html_escape(s->reason) + "</li>";
    return note + "</ul>";
  }

  const ParsedMessage& msg_;
  const DraftOptions& options_;
  HtmlBudget budget_;
  DraftFailure failure_ = DraftFailure::None;
  std::string failure_reason_;
  std::map<std::string, std::string> inline_by_digest_;  // sha256 of inline data: → its ref
  std::size_t named_budget_skips_ = 0;
  std::size_t media_limit_skips_ = 0;
  std::map<std::string, std::size_t> unnamed_skips_;  // reason → skips past kMaxNamedSkips
  TicketDraft draft_;
  std::map<std::string, const MimePart*> by_content_id_;
  std::map<const MimePart*, std::size_t> media_of_;
  std::set<const MimePart*> consumed_;
};

}  // namespace

DraftResult build_draft(std::string_view raw, const DraftOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.max_processing_time;
  DraftResult result;
  // The rule every ingest path applied (header_block.hpp): what deliver and
  // SMTP accepted is a mail here too; IMAP's non-mail ends in failed/ with this reason.
  if (const MailVerdict verdict = classify_mail(raw); verdict != MailVerdict::Mail) {
    result.failure = DraftFailure::NotMail;
    result.error = std::string(to_string(verdict));
    return result;
  }
  ParsedMessage msg = parse_mime(raw, options.limits);
  DraftBuilder builder(msg, options, deadline);
  TicketDraft draft = builder.build();
  if (builder.failure() != DraftFailure::None) {
    result.failure = builder.failure();
    result.error = builder.failure() == DraftFailure::Cancelled ? builder.failure_reason()
                                                                : "over budget: " + builder.failure_reason();
    return result;
  }
  result.draft = std::move(draft);
  return result;
}

}  // namespace mailgate::mail
