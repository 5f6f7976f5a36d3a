// HttpClient: one connection per request in flight, returned to a per-host
// idle list when the server keeps it alive. A reused connection that fails
// before any response byte arrived is retried once on a fresh one: the
// server closed it while idle, so the request was never processed.
#include "mailgate/net/http_client.hpp"
#include "mailgate/net/resolver.hpp"

#include <cctype>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <variant>

namespace mailgate::net {

using asio::use_awaitable;
using boost::system::error_code;

namespace {

TransportError classify(const error_code& ec) {
  if (ec == beast::error::timeout) return TransportError::Timeout;
  if (ec.category() == asio::error::get_ssl_category()) return TransportError::Tls;
  if (ec == http::error::body_limit || ec == http::error::header_limit) return TransportError::ResponseTooLarge;
  return TransportError::Connection;
}

}  // namespace

std::string_view to_string(TransportError e) {
  switch (e) {
    case TransportError::None: return "none";
    case TransportError::BadUrl: return "bad-url";
    case TransportError::PlainHttpRefused: return "plain-http-refused";
    case TransportError::Resolve: return "resolve";
    case TransportError::Connect: return "connect";
    case TransportError::Tls: return "tls";
    case TransportError::Timeout: return "timeout";
    case TransportError::Connection: return "connection";
    case TransportError::ResponseTooLarge: return "response-too-large";
  }
  return "unknown";
}

std::optional<Url> parse_url(std::string_view s) {
  Url u;
  if (s.rfind("https://", 0) == 0) {
    u.https = true;
    s.remove_prefix(8);
  } else if (s.rfind("http://", 0) == 0) {
    u.https = false;
    s.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  std::size_t slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  if (authority.front() == '[') {  // [v6]:port
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() == ':') u.port = std::string(authority.substr(1));
  } else {
    std::size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
  }
  if (u.port.empty()) u.port = u.https ? "443" : "80";
  if (u.host.empty() || u.port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return u;
}

struct HttpClient::Connection {
  std::variant<beast::tcp_stream, beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  bool reused = false;

  template <class... Args>
  explicit Connection(Args&&... args) : stream(std::forward<Args>(args)...) {}

  beast::tcp_stream& tcp() {
    if (auto* plain = std::get_if<beast::tcp_stream>(&stream)) return *plain;
    return beast::get_lowest_layer(std::get<1>(stream));
  }
};

HttpClient::HttpClient(asio::any_io_executor executor, TlsSettings tls, HttpLimits limits, bool allow_plain_http)
    : executor_(std::move(executor)),
      ssl_context_(make_client_tls_context(tls)),  // throws at start-up: a config error
      limits_(limits),
      allow_plain_http_(allow_plain_http) {}

HttpClient::~HttpClient() = default;

asio::awaitable<std::unique_ptr<HttpClient::Connection>> HttpClient::connect(const Url& url, HttpResponse& failure) {
  error_code ec;
  // A dead DNS server must not hold a call for resolv.conf's minutes: the
  // lookup shares the connect budget.
  Resolved resolved = co_await resolve(url.host, url.port, limits_.connect_timeout);
  if (!resolved.error.empty()) {
    failure.error = TransportError::Resolve;
    failure.error_text = resolved.error;
    co_return nullptr;
  }
  const auto& endpoints = resolved.endpoints;
  std::unique_ptr<Connection> c;
  if (url.https) {
    c = std::make_unique<Connection>(std::in_place_index<1>, executor_, ssl_context_);
  } else {
    c = std::make_unique<Connection>(std::in_place_index<0>, executor_);
  }
  c->tcp().expires_after(limits_.connect_timeout);
  co_await c->tcp().async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    failure.error = ec == beast::error::timeout ? TransportError::Timeout : TransportError::Connect;
    failure.error_text = "cannot connect to " + url.host + ":" + url.port + ": " + ec.message();
    co_return nullptr;
  }
  if (url.https) {
    auto& tls = std::get<1>(c->stream);
    expect_peer(tls.native_handle(), url.host);
    co_await tls.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      failure.error = ec == beast::error::timeout ? TransportError::Timeout : TransportError::Tls;
      long verify = SSL_get_verify_result(tls.native_handle());
      failure.error_text = "TLS handshake with " + url.host + " failed: " +
                           (verify != X509_V_OK ? std::string(X509_verify_cert_error_string(verify)) : ec.message());
      co_return nullptr;
    }
  }
  ++connections_opened_;
  co_return c;
}

asio::awaitable<HttpResponse> HttpClient::exchange(Connection& c, const Url& url, const HttpRequest& request,
                                                   bool& keep_alive, bool& response_started) {
  HttpResponse out;
  http::request<http::string_body> req{request.method, url.target, 11};
  bool default_port = (url.https && url.port == "443") || (!url.https && url.port == "80");
  req.set(http::field::host, default_port ? url.host : url.host + ":" + url.port);
  req.set(http::field::user_agent, "mailgate");
  for (const auto& [name, value] : request.headers) req.set(name, value);
  if (!request.body.empty() || request.method == http::verb::post) {
    req.set(http::field::content_type, request.content_type);
    req.body() = request.body;
  }
  req.keep_alive(true);
  req.prepare_payload();

  error_code ec;
  c.tcp().expires_after(limits_.write_timeout);
  if (auto* plain = std::get_if<beast::tcp_stream>(&c.stream))
    co_await http::async_write(*plain, req, asio::redirect_error(use_awaitable, ec));
  else
    co_await http::async_write(std::get<1>(c.stream), req, asio::redirect_error(use_awaitable, ec));
  // A request written in part cannot have been acted on (its length is
  // declared); one written whole may have been.
  out.maybe_processed = !ec;
  if (ec) {
    out.error = classify(ec);
    out.error_text = "sending to " + url.host + " failed: " + ec.message();
    co_return out;
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(limits_.max_response_bytes);
  parser.header_limit(64 * 1024);
  c.tcp().expires_after(limits_.read_timeout);
  if (auto* plain = std::get_if<beast::tcp_stream>(&c.stream))
    co_await http::async_read(*plain, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
  else
    co_await http::async_read(std::get<1>(c.stream), c.buffer, parser, asio::redirect_error(use_awaitable, ec));
  response_started = parser.got_some() || c.buffer.size() > 0;
  if (ec) {
    out.error = classify(ec);
    out.error_text = "reading the response from " + url.host + " failed: " + ec.message();
    co_return out;
  }
  auto res = parser.release();
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  if (auto it = res.find(http::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers[name] = std::string(field.value());
  }
  keep_alive = res.keep_alive();
  co_return out;
}

asio::awaitable<HttpResponse> HttpClient::send(HttpRequest request) {
  HttpResponse failure;
  auto url = parse_url(request.url);
  if (!url) {
    failure.error = TransportError::BadUrl;
    failure.error_text = "not an http(s) URL";
    co_return failure;
  }
  if (!url->https && !allow_plain_http_) {
    failure.error = TransportError::PlainHttpRefused;
    failure.error_text = "plain http:// refused (allow_plain_http is off)";
    co_return failure;
  }
  const std::string key = (url->https ? "https://" : "http://") + url->host + ":" + url->port;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Connection> c;
    auto& idle = idle_[key];
    if (!idle.empty()) {
      c = std::move(idle.back());
      idle.pop_back();
      c->reused = true;
    } else {
      c = co_await connect(*url, failure);
      if (!c) co_return failure;
    }
    bool keep_alive = false, response_started = false;
    HttpResponse r = co_await exchange(*c, *url, request, keep_alive, response_started);
    if (r.error != TransportError::None && c->reused && !response_started && attempt == 0 &&
        (request.idempotent || !r.maybe_processed))
      continue;  // stale keep-alive connection: the server closed it while idle
    if (r.error == TransportError::None && keep_alive && idle_[key].size() < limits_.max_idle_per_host) {
      c->buffer.consume(c->buffer.size());
      idle_[key].push_back(std::move(c));
    }
    co_return r;
  }
  co_return failure;  // not reached
}

}  // namespace mailgate::net
