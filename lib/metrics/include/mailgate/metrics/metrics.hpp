// A tiny metrics registry (Prometheus text format 0.0.4), thread-safe, so
// any thread (event loops, the spool committer) can record.
//
// Usage — the name and help are given at every call site; the first call
// defines the family, later calls with another type are ignored (a
// programming error, reported once on stderr):
//   auto& m = metrics::Registry::global();
//   m.add("mailgate_api_requests_total", "API requests by endpoint and status.",
//         {{"endpoint", "tickets"}, {"status", "201"}});
//   m.set("mailgate_api_paused", "1 while posting is paused.", {}, 1);
//   m.observe("mailgate_api_request_duration_seconds", "API request latency.", {{"endpoint", "tickets"}}, 0.12);
// Names follow Prometheus conventions (counters end in _total, units in the
// name). Label values are escaped when rendered; keep their number small
// (no ids, no addresses).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailgate::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Upper bounds of the default histogram buckets, in seconds (request latency).
inline const std::vector<double> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

class Registry {
 public:
  // The process-wide registry that /metrics renders.
  static Registry& global();

  // Counter: adds `by` (>= 0).
  void add(std::string_view name, std::string_view help, const Labels& labels, double by = 1);
  // Gauge: sets the value.
  void set(std::string_view name, std::string_view help, const Labels& labels, double value);
  // Histogram: one observation; `buckets` only matters on the family's first use.
  void observe(std::string_view name, std::string_view help, const Labels& labels, double value,
               const std::vector<double>& buckets = kDefaultBuckets);

  // Every family, sorted by name, as Prometheus text.
  std::string render() const;
  // For tests: a counter's or gauge's value, a histogram's count.
  std::optional<double> value(std::string_view name, const Labels& labels) const;
  void clear();  // for tests

 private:
  enum class Type { Counter, Gauge, Histogram };
  struct Series {
    double value = 0;                 // counter, gauge; histogram: sum
    std::vector<std::uint64_t> counts;  // histogram: per bucket (not cumulative), +Inf last
    std::uint64_t count = 0;          // histogram
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> buckets;
    std::map<Labels, Series> series;
  };
  Family* family(std::string_view name, std::string_view help, Type type, const std::vector<double>& buckets);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace mailgate::metrics
