// Threading's decisions (design.md "Threading"): the order in which a
// message's ids and subject are tried, the bounds on hostile headers and
// subjects, and who may join a ticket.
#include "mailgate/pipeline/threading.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace mailgate;
using pipeline::ThreadBy;

namespace {

// An index of Message-ID → ticket, as the spool would answer.
struct FakeIndex {
  std::map<std::string, std::string> ticket_by_id;
  std::vector<std::string> asked;
  pipeline::ThreadMatcher::IndexLookup lookup() {
    return [this](const std::string& id) -> std::optional<spool::ThreadEntry> {
      asked.push_back(id);
      auto it = ticket_by_id.find(id);
      if (it == ticket_by_id.end()) return std::nullopt;
      return spool::ThreadEntry{it->second, "", "jane@example.com", "12", 0};
    };
  }
};

std::unique_ptr<pipeline::ThreadMatcher> matcher(std::vector<std::string> patterns = {R"(\[#(\d+)\])"}) {
  config::ThreadingConfig c;
  c.subject_patterns = std::move(patterns);
  std::string error;
  auto m = pipeline::ThreadMatcher::build(c, &error);
  EXPECT_TRUE(m) << error;
  return m;
}

}  // namespace

TEST(ThreadHeaders, InReplyToAndReferencesAreReadFoldedAndWithoutBrackets) {
  auto h = pipeline::read_thread_headers(
      "From: a@x\r\nreferences: <one@x>\r\n <two@x>\r\n\t<three@x>\r\nIn-Reply-To: <three@x> (Jane's mail)\r\n"
      "\r\nReferences: <body@x>\r\n");
  EXPECT_EQ(h.in_reply_to, (std::vector<std::string>{"three@x"}));
  EXPECT_EQ(h.references, (std::vector<std::string>{"one@x", "two@x", "three@x"}));
}

TEST(ThreadHeaders, ALineThatIsNoFieldAboveThemDoesNotHideThem) {
  // A badly folded Subject must not turn a reply into a new ticket.
  auto h = pipeline::read_thread_headers(
      "From: a@x\r\nSubject: =?utf-8?q?Re:_x?=\r\n=?utf-8?q?unfolded?=\r\nIn-Reply-To: <parent@x>\r\n\r\n");
  EXPECT_EQ(h.in_reply_to, (std::vector<std::string>{"parent@x"}));
}

TEST(ThreadHeaders, CandidatesAreInReplyToThenReferencesNewestFirstEachOnce) {
  pipeline::ThreadHeaders h{{"c@x"}, {"a@x", "b@x", "C@x"}};
  EXPECT_EQ(pipeline::thread_candidates(h), (std::vector<std::string>{"c@x", "b@x", "a@x"}));
}

TEST(ThreadHeaders, AHostileReferencesHeaderIsBoundedKeepingTheNewest) {
  std::string refs;
  for (int i = 0; i < 5000; ++i) refs += " <r" + std::to_string(i) + "@x>";
  auto h = pipeline::read_thread_headers("References:" + refs + "\r\nIn-Reply-To: <r4999@x>\r\n\r\nbody");
  EXPECT_EQ(h.in_reply_to.size() + h.references.size(), pipeline::kMaxThreadIds);
  ASSERT_FALSE(h.references.empty());
  EXPECT_EQ(h.references.back(), "r4999@x");  // the newest kept
  // An id longer than a header line is no id.
  auto longer = pipeline::read_thread_headers("In-Reply-To: <" + std::string(5000, 'a') + "@x>\r\n\r\n");
  EXPECT_TRUE(longer.in_reply_to.empty());
}

TEST(ThreadMatcher, InReplyToWinsOverReferences) {
  FakeIndex index;
  index.ticket_by_id = {{"parent@x", "7"}, {"older@x", "9"}};
  auto m = matcher();
  auto match = m->match({{"parent@x"}, {"older@x"}}, "Re: [#5] hi", index.lookup());
  ASSERT_TRUE(match);
  EXPECT_EQ(match->ticket_id, "7");
  EXPECT_EQ(match->by, ThreadBy::References);
}

TEST(ThreadMatcher, TheNewestKnownReferenceWins) {
  FakeIndex index;
  index.ticket_by_id = {{"first@x", "1"}, {"second@x", "2"}};
  auto m = matcher();
  // In-Reply-To unknown; References oldest first: second@x is the newest known.
  auto match = m->match({{"unknown@x"}, {"first@x", "second@x", "gone@x"}}, "Re: hi", index.lookup());
  ASSERT_TRUE(match);
  EXPECT_EQ(match->ticket_id, "2");
  EXPECT_EQ(index.asked, (std::vector<std::string>{"unknown@x", "gone@x", "second@x"}));
}

TEST(ThreadMatcher, TheSubjectPatternIsTriedLastAndItsFirstGroupIsTheTicket) {
  FakeIndex index;
  auto m = matcher({R"(\[#(\d+)\])", R"(Ticket (\d+))"});
  auto by_subject = m->match({{"unknown@x"}, {}}, "Re: [#42] printer", index.lookup());
  ASSERT_TRUE(by_subject);
  EXPECT_EQ(by_subject->ticket_id, "42");
  EXPECT_EQ(by_subject->by, ThreadBy::Subject);
  EXPECT_EQ(index.asked, (std::vector<std::string>{"unknown@x"}));  // the index was asked first
  EXPECT_EQ(m->ticket_in_subject("about Ticket 77 again"), "77");
  EXPECT_FALSE(m->match({}, "Re: printer", index.lookup()));
  index.ticket_by_id = {{"known@x", "3"}};
  EXPECT_EQ(m->match({{"known@x"}, {}}, "Re: [#42] printer", index.lookup())->ticket_id, "3");
}

TEST(ThreadMatcher, APatternWithoutACaptureGroupOrInvalidIsRefused) {
  for (const char* bad : {R"(\[#\d+\])", R"(\[#(\d+)", R"((?<=x)(\d+))"}) {
    config::ThreadingConfig c;
    c.subject_patterns = {bad};
    std::string error;
    EXPECT_FALSE(pipeline::ThreadMatcher::build(c, &error)) << bad;
    EXPECT_NE(error.find(bad), std::string::npos) << error;
  }
}

TEST(ThreadMatcher, AHostileSubjectIsSearchedOnlyUpToItsBound) {
  auto m = matcher({R"((?:a+)+\[#(\d+)\])"});  // catastrophic for a backtracking engine, linear on RE2
  const std::string padding(pipeline::kMaxSubjectScan - 20, 'a');
  EXPECT_EQ(m->ticket_in_subject(padding + "[#12]"), "12");
  // The same tag past the bound is not seen: a megabyte subject costs no more than the bound.
  EXPECT_FALSE(m->ticket_in_subject(std::string(1 << 20, 'a') + "[#12]"));
  // A capture too long to be a ticket id is none.
  auto any = matcher({R"(\[#(\d+)\])"});
  EXPECT_FALSE(any->ticket_in_subject("[#" + std::string(200, '9') + "]"));
}

TEST(ThreadAllow, OnlyTheCreatorJoinsUnlessAllowAny) {
  using config::ThreadAllow;
  using pipeline::JoinVerdict;
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "Jane@Example.COM", "12", "jane@example.com", "12"),
            JoinVerdict::Join);
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "bob@example.com", "13", "jane@example.com", "12"),
            JoinVerdict::NotCreator);
  // The address decides when both are known, even if user ids were to agree.
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "bob@example.com", "12", "jane@example.com", "12"),
            JoinVerdict::NotCreator);
  // A ticket known only from the API: its creator's user id.
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "jane@example.com", "12", "", "12"), JoinVerdict::Join);
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "bob@example.com", "13", "", "12"), JoinVerdict::NotCreator);
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Creator, "bob@example.com", "13", "", ""), JoinVerdict::CreatorUnknown);
  EXPECT_EQ(pipeline::may_join(ThreadAllow::Any, "bob@example.com", "13", "jane@example.com", "12"), JoinVerdict::Join);
}

TEST(ThreadClosed, ClosedStatusesAreCaseInsensitiveAndTheFollowUpNoteIsEscaped) {
  EXPECT_TRUE(pipeline::is_closed("Solved", {"closed", "solved"}));
  EXPECT_FALSE(pipeline::is_closed("open", {"closed", "solved"}));
  EXPECT_FALSE(pipeline::is_closed("", {"closed", "solved"}));
  EXPECT_EQ(pipeline::follow_up_note("T-<7>"), "<p>Follow-up to closed ticket #T-&lt;7&gt;</p>");
}
