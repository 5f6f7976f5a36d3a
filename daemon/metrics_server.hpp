// `metrics.listen`: GET /metrics (Prometheus text format 0.0.4) and
// GET /healthz (200 "ok", or 503 with the reason mail would be refused now).
// Figures come from the spool database, the source of truth, so they are
// right across restarts and include mail added by `mailgate deliver`.
#pragma once

#include <cstdint>
#include <string>

#include "mailgate/net/asio.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {

class MetricsServer {
 public:
  MetricsServer(net::asio::any_io_executor ex, spool::Spool& spool, const std::string& host, std::uint16_t port);
  void start();  // throws when the address cannot be bound
  void stop();
  std::uint16_t port() const;

  static std::string render_metrics(spool::Spool& spool, std::int64_t now, std::int64_t started_at);

 private:
  net::asio::awaitable<void> accept_loop();
  net::asio::awaitable<void> serve(net::tcp::socket socket);

  net::asio::any_io_executor ex_;
  spool::Spool& spool_;
  net::tcp::acceptor acceptor_;
  net::tcp::endpoint endpoint_;
  std::int64_t started_at_ = 0;
};

}  // namespace mailgate::cli
