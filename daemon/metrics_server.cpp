#include "metrics_server.hpp"

#include <ctime>
#include <map>
#include <sstream>

#include "mailgate/log/log.hpp"
#include "mailgate/metrics/metrics.hpp"

namespace mailgate::cli {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;

MetricsServer::MetricsServer(asio::any_io_executor ex, spool::Spool& spool, const std::string& host,
                             std::uint16_t port)
    : ex_(ex), spool_(spool), acceptor_(ex), endpoint_(asio::ip::make_address(host), port) {}

void MetricsServer::start() {
  acceptor_.open(endpoint_.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint_);
  acceptor_.listen();
  started_at_ = static_cast<std::int64_t>(std::time(nullptr));
  log::info("metrics.listening", {{"address", endpoint_.address().to_string() + ":" + std::to_string(port())}});
  asio::co_spawn(ex_, accept_loop(), asio::detached);
}

void MetricsServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

std::uint16_t MetricsServer::port() const { return acceptor_.local_endpoint().port(); }

awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) continue;
    asio::co_spawn(ex_, serve(std::move(socket)), asio::detached);
  }
}

std::string MetricsServer::render_metrics(spool::Spool& spool, std::int64_t now, std::int64_t started_at) {
  const auto st = spool.stats();
  std::ostringstream o;
  o << "# HELP mailgate_messages Messages in the spool by state and ingest source.\n"
       "# TYPE mailgate_messages gauge\n";
  for (const auto& c : st.counts)
    o << "mailgate_messages{state=\"" << spool::to_string(c.state) << "\",source=\"" << c.source << "\"} "
      << c.messages << "\n";
  o << "# HELP mailgate_queue_bytes Bytes of mail waiting to become tickets.\n# TYPE mailgate_queue_bytes gauge\n"
    << "mailgate_queue_bytes " << st.queued_bytes << "\n"
    << "# HELP mailgate_queue_deferred Queued messages that have failed at least once and wait for a retry.\n"
       "# TYPE mailgate_queue_deferred gauge\nmailgate_queue_deferred "
    << st.deferred << "\n"
    << "# HELP mailgate_queue_oldest_age_seconds Age of the oldest queued message (0 when none).\n"
       "# TYPE mailgate_queue_oldest_age_seconds gauge\nmailgate_queue_oldest_age_seconds "
    << (st.oldest_queued_at ? now - st.oldest_queued_at : 0) << "\n"
    << "# HELP mailgate_held_messages Messages held (not posted until `mailgate queue release`), by kind.\n"
       "# TYPE mailgate_held_messages gauge\n";
  for (const auto& [kind, n] : st.held_by_kind) o << "mailgate_held_messages{reason=\"" << kind << "\"} " << n << "\n";
  o << "# HELP mailgate_start_time_seconds When this daemon started (UNIX time).\n"
       "# TYPE mailgate_start_time_seconds gauge\nmailgate_start_time_seconds "
    << started_at << "\n";
  // What the parts record as they run (API calls, tickets, ...): lib/metrics.
  o << metrics::Registry::global().render();
  return o.str();
}

awaitable<void> MetricsServer::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(16 * 1024);  // bounds the request too
  http::request<http::string_body> req;
  boost::system::error_code ec;
  stream.expires_after(std::chrono::seconds(10));
  co_await http::async_read(stream, buffer, req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  const std::string target(req.target());
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.body() = "GET only\n";
  } else if (target == "/metrics") {
    try {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = render_metrics(spool_, static_cast<std::int64_t>(std::time(nullptr)), started_at_);
    } catch (const std::exception& e) {
      res.result(http::status::internal_server_error);
      res.body() = std::string("spool unreadable: ") + e.what() + "\n";
    }
  } else if (target == "/healthz") {
    std::optional<std::string> problem;
    try {
      problem = spool_.check_capacity();
      (void)spool_.stats();  // the database answers
    } catch (const std::exception& e) {
      problem = std::string("spool unreadable: ") + e.what();
    }
    res.result(problem ? http::status::service_unavailable : http::status::ok);
    res.body() = problem ? *problem + "\n" : std::string("ok\n");
  } else {
    res.result(http::status::not_found);
    res.body() = "try /metrics or /healthz\n";
  }
  res.prepare_payload();
  co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace mailgate::cli
