// threading: in the configuration file (design.md "Threading"): defaults,
// every key read, and patterns that cannot name a ticket refused at load.
#include "mailgate/config/config.hpp"

#include <gtest/gtest.h>

using namespace mailgate::config;

namespace {
const std::string kBase = R"(spool_dir: /tmp/spool
messenger:
  mode: dry-run
smtp:
  listen: ["127.0.0.1:2525"]
  accept: ["support@example.com"]
)";

std::string all_errors(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}
}  // namespace

TEST(ThreadingConfig, DefaultsAreTheDesignsWhenAbsent) {
  auto r = load_config_text(kBase, "t.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const ThreadingConfig& t = r.config->threading;
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.subject_patterns, (std::vector<std::string>{R"(\[#(\d+)\])"}));
  EXPECT_EQ(t.allow, ThreadAllow::Creator);
  EXPECT_EQ(t.closed, ClosedTicket::Reopen);
  EXPECT_EQ(t.remember, std::chrono::seconds(365 * 86400));
}

TEST(ThreadingConfig, EveryKeyIsReadAndShownByCheckConfig) {
  auto r = load_config_text(kBase + R"(threading:
  enabled: false
  subject_patterns: ['\[#(\d+)\]', 'Case (\w+)']
  allow: any
  closed: new_ticket
  closed_statuses: [done]
  reopen_status: pending
  strip_quoted: false
  remember: 30d
)", "t.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const ThreadingConfig& t = r.config->threading;
  EXPECT_FALSE(t.enabled);
  EXPECT_EQ(t.subject_patterns.size(), 2u);
  EXPECT_EQ(t.allow, ThreadAllow::Any);
  EXPECT_EQ(t.closed, ClosedTicket::NewTicket);
  EXPECT_EQ(t.closed_statuses, (std::vector<std::string>{"done"}));
  EXPECT_EQ(t.reopen_status, "pending");
  EXPECT_FALSE(t.strip_quoted);
  EXPECT_EQ(t.remember, std::chrono::seconds(30 * 86400));
  const std::string shown = describe(*r.config);
  for (const char* key : {"threading:", "subject_patterns:", "allow: any", "closed: new_ticket", "closed_statuses:",
                          "reopen_status: pending", "strip_quoted: false", "remember: 2592000s"})
    EXPECT_NE(shown.find(key), std::string::npos) << key << "\n" << shown;
}

TEST(ThreadingConfig, APatternWithoutCaptureGroupOrInvalidIsAnErrorWithPosition) {
  auto r = load_config_text(kBase + "threading:\n  subject_patterns: ['\\[#\\d+\\]', '(unclosed']\n", "t.yaml");
  ASSERT_FALSE(r.config);
  const std::string errors = all_errors(r);
  EXPECT_NE(errors.find("t.yaml:8:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("no capture group"), std::string::npos) << errors;
  EXPECT_NE(errors.find("(unclosed"), std::string::npos) << errors;
}

TEST(ThreadingConfig, BadValuesAreReported) {
  auto r = load_config_text(kBase + "threading:\n  allow: everyone\n  closed: ignore\n  colour: red\n", "t.yaml");
  ASSERT_FALSE(r.config);
  const std::string errors = all_errors(r);
  EXPECT_NE(errors.find("threading.allow must be creator or any"), std::string::npos) << errors;
  EXPECT_NE(errors.find("threading.closed must be"), std::string::npos) << errors;
  EXPECT_NE(errors.find("unknown key 'colour'"), std::string::npos) << errors;
}
