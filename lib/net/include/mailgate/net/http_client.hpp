// An async HTTP/1.1 client on Beast and C++20 coroutines: TLS with
// certificate and host-name verification and SNI, keep-alive connections
// reused per host, a timeout on every wait, a bound on response size.
// It knows nothing of the Messenger API; errors come back as values.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailgate/net/asio.hpp"
#include "mailgate/net/tls.hpp"

namespace mailgate::net {

struct Url {
  bool https = true;
  std::string host;
  std::string port;    // always set ("443" when implied)
  std::string target;  // path and query, at least "/"
};
std::optional<Url> parse_url(std::string_view url);

struct HttpLimits {
  std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + TLS handshake
  std::chrono::milliseconds write_timeout{60'000};    // sending one request (10 MB uploads)
  std::chrono::milliseconds read_timeout{30'000};     // the whole response
  std::size_t max_response_bytes = 4 * 1024 * 1024;
  std::size_t max_idle_per_host = 16;
};

struct HttpRequest {
  http::verb method = http::verb::get;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
  // False for a request that must not be sent twice (creating a ticket): a
  // reused connection that fails after the request was written is then
  // reported (maybe_processed), not silently retried — a server may have
  // acted on it and dropped the connection before answering.
  bool idempotent = true;
};

enum class TransportError {
  None,
  BadUrl,             // not an http(s) URL
  PlainHttpRefused,   // http:// without allow_plain_http
  Resolve,            // name lookup failed
  Connect,            // refused, unreachable
  Tls,                // handshake or certificate verification failed
  Timeout,            // a wait ran out
  Connection,         // reset, closed, or a broken response
  ResponseTooLarge,   // over HttpLimits::max_response_bytes
};
std::string_view to_string(TransportError e);

struct HttpResponse {
  TransportError error = TransportError::None;
  std::string error_text;     // for the operator; never contains the body
  bool maybe_processed = false;  // the whole request was sent; the server may have acted on it
  int status = 0;
  std::string body;
  std::string retry_after;    // raw Retry-After header, "" if absent
  // Every response header, the name in lower case (rate-limit headers such
  // as x-throttle-reset are read by the Messenger client).
  std::map<std::string, std::string> headers;
};

class HttpClient {
 public:
  HttpClient(asio::any_io_executor executor, TlsSettings tls, HttpLimits limits, bool allow_plain_http);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  asio::awaitable<HttpResponse> send(HttpRequest request);

  // Connections opened so far (for tests and benchmarks of keep-alive).
  std::size_t connections_opened() const { return connections_opened_; }

 private:
  struct Connection;
  asio::awaitable<std::unique_ptr<Connection>> connect(const Url& url, HttpResponse& failure);
  asio::awaitable<HttpResponse> exchange(Connection& c, const Url& url, const HttpRequest& request,
                                         bool& keep_alive, bool& response_started);

  asio::any_io_executor executor_;
  ssl::context ssl_context_;
  HttpLimits limits_;
  bool allow_plain_http_;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
  std::size_t connections_opened_ = 0;
};

}  // namespace mailgate::net
