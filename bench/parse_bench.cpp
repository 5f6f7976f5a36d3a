// Throughput and peak memory of parse → draft (what the processor does per
// message), over a set of .eml files.
//   parse_bench --repeat N FILE...   prints MB/s over all files, N rounds
//   parse_bench --memory FILE        parses one file once and prints peak RSS
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mailgate/mail/ticket_draft.hpp"

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

long current_rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--memory") == 0) {
    long before = current_rss_kb();
    std::size_t size = 0, media = 0;
    {
      std::string raw = read_file(argv[2]);
      size = raw.size();
      auto r = mailgate::mail::build_draft(raw);
      if (r.draft) media = r.draft->media.size();
    }
    long peak = peak_rss_kb();
    std::printf("memory file=%s size_mb=%.1f media=%zu baseline_rss_mb=%.1f peak_rss_mb=%.1f "
                "peak_over_baseline_mb=%.1f ratio_to_size=%.2f\n",
                argv[2], size / 1048576.0, media, before / 1024.0, peak / 1024.0, (peak - before) / 1024.0,
                (peak - before) * 1024.0 / static_cast<double>(size));
    return 0;
  }
  if (argc < 4 || std::strcmp(argv[1], "--repeat") != 0) {
    std::fprintf(stderr, "usage: parse_bench --repeat N FILE... | parse_bench --memory FILE\n");
    return 64;
  }
  int rounds = std::atoi(argv[2]);
  std::vector<std::string> mails;
  std::size_t total = 0;
  for (int i = 3; i < argc; ++i) {
    mails.push_back(read_file(argv[i]));
    total += mails.back().size();
  }
  std::size_t drafts = 0;
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r)
    for (const auto& m : mails) drafts += mailgate::mail::build_draft(m).draft ? 1 : 0;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double mb = static_cast<double>(total) * rounds / 1048576.0;
  std::printf("mailgate files=%zu rounds=%d mb=%.1f seconds=%.3f mb_per_s=%.1f msgs_per_s=%.0f\n", mails.size(),
              rounds, mb, seconds, mb / seconds, static_cast<double>(drafts) / seconds);
  return 0;
}
