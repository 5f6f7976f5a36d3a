// Time per MB of the HTML sanitiser (and, for data: images, the whole draft)
// on hostile inputs at growing sizes: linear means the ms/MB column stays
// flat as the input grows (issue 13, item 4). Figures only; never a test.
//   html_bench [MAX_MB]   (default 25: sizes 1, 5, MAX_MB)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "mailgate/mail/html.hpp"
#include "mailgate/mail/ticket_draft.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string repeat_to(std::string_view unit, std::size_t bytes) {
  std::string out;
  out.reserve(bytes + unit.size());
  while (out.size() < bytes) out += unit;
  return out;
}

struct Case {
  const char* name;
  std::function<std::string(std::size_t)> make;
  bool whole_draft = false;  // build_draft on a mail (data: images), else sanitize_html
};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t max_mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 25;
  const std::size_t mb = 1024 * 1024;
  const std::vector<Case> cases = {
      {"head-body", [](std::size_t n) { return repeat_to("<head><body>", n); }},
      {"ff-handlers", [](std::size_t n) { return repeat_to("<details\fopen\fontoggle=alert(1)>x</details>", n); }},
      {"entity-hrefs", [](std::size_t n) { return repeat_to("<a href=\"j&#97;vascript&colon;x\">y</a>", n); }},
      {"css-styles", [](std::size_t n) { return repeat_to("<p style=\"color:red;background:u\\72 l(x)\">y</p>", n); }},
      {"unclosed-p", [](std::size_t n) { return repeat_to("<p>para", n); }},
      {"table-cells", [](std::size_t n) { return "<table>" + repeat_to("<tr><td>c", n); }},
      {"misnested-formatting", [](std::size_t n) { return repeat_to("<b><i>x</b></i>", n); }},
      {"comments", [](std::size_t n) { return repeat_to("<!-- c --><!x>", n); }},
      // Quadratic in HTML5 itself (scope checks walk the open elements);
      // linear here because nesting is bounded before the parse.
      {"deep-div-nesting", [](std::size_t n) { return repeat_to("<div>", n); }},
      {"div-in-attribute-nesting", [](std::size_t n) { return repeat_to("<div title=\"</div>\">", n); }},
      {"255-spans-then-end-tags", [](std::size_t n) { return repeat_to("<span>", 255 * 6) + repeat_to("</x>", n); }},
      {"data-uri-images (draft)",
       [](std::size_t n) {
         std::string head = "From: a@example.com\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n";
         return head + repeat_to("<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ\">", n);
       },
       true},
  };
  std::printf("%-26s %8s %10s %10s %s\n", "case", "MB", "ms", "ms/MB", "result");
  for (const auto& c : cases) {
    for (std::size_t size : {std::size_t{1}, std::size_t{5}, max_mb}) {
      std::string input = c.make(size * mb);
      auto t0 = Clock::now();
      std::string result;
      if (c.whole_draft) {
        auto r = mailgate::mail::build_draft(input);
        result = r.draft ? std::to_string(r.draft->media.size()) + " uploads" : r.error;
      } else {
        auto r = mailgate::mail::sanitize_html(input, nullptr, mailgate::mail::HtmlBudget{});
        result = r.failure == mailgate::mail::HtmlFailure::None ? std::to_string(r.html.size()) + " bytes out" : r.error;
      }
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      double in_mb = static_cast<double>(input.size()) / static_cast<double>(mb);
      std::printf("%-26s %8.1f %10.0f %10.1f %s\n", c.name, in_mb, ms, ms / in_mb, result.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
