// lib/metrics: what /metrics shows, in Prometheus text format 0.0.4.
#include "mailgate/metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

using mailgate::metrics::Registry;

TEST(Metrics, CountersGaugesAndHistogramsRenderAsPrometheusText) {
  Registry r;
  r.add("x_requests_total", "Requests.", {{"endpoint", "tickets"}, {"status", "201"}});
  r.add("x_requests_total", "Requests.", {{"endpoint", "tickets"}, {"status", "201"}}, 2);
  r.set("x_paused", "Paused.", {}, 1);
  r.observe("x_seconds", "Latency.", {{"endpoint", "a\"b"}}, 0.3, {0.1, 0.5, 1});
  r.observe("x_seconds", "Latency.", {{"endpoint", "a\"b"}}, 2, {0.1, 0.5, 1});
  EXPECT_EQ(r.render(),
            "# HELP x_paused Paused.\n# TYPE x_paused gauge\nx_paused 1\n"
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n"
            "x_requests_total{endpoint=\"tickets\",status=\"201\"} 3\n"
            "# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{endpoint=\"a\\\"b\",le=\"0.10000000000000001\"} 0\n"
            "x_seconds_bucket{endpoint=\"a\\\"b\",le=\"0.5\"} 1\n"
            "x_seconds_bucket{endpoint=\"a\\\"b\",le=\"1\"} 1\n"
            "x_seconds_bucket{endpoint=\"a\\\"b\",le=\"+Inf\"} 2\n"
            "x_seconds_sum{endpoint=\"a\\\"b\"} 2.2999999999999998\n"
            "x_seconds_count{endpoint=\"a\\\"b\"} 2\n");
  EXPECT_EQ(r.value("x_requests_total", {{"endpoint", "tickets"}, {"status", "201"}}), 3.0);
  EXPECT_EQ(r.value("x_seconds", {{"endpoint", "a\"b"}}), 2.0);
  EXPECT_FALSE(r.value("x_requests_total", {}));
}

TEST(Metrics, AFamilyKeepsItsFirstType) {
  Registry r;
  r.add("y_total", "Y.", {});
  r.set("y_total", "Y.", {}, 42);  // ignored: a counter cannot be set
  EXPECT_EQ(r.value("y_total", {}), 1.0);
}

TEST(Metrics, RecordingFromManyThreadsLosesNothing) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        r.add("z_total", "Z.", {{"k", "v"}});
        r.observe("z_seconds", "Z.", {}, 0.01);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.value("z_total", {{"k", "v"}}), 40000.0);
  EXPECT_EQ(r.value("z_seconds", {}), 40000.0);
}
