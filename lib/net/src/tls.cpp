#include "mailgate/net/tls.hpp"

#include <openssl/x509v3.h>

namespace mailgate::net {

ssl::context make_client_tls_context(const TlsSettings& tls) {
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (tls.system_store) ctx.set_default_verify_paths();
  if (!tls.ca_file.empty()) ctx.load_verify_file(tls.ca_file);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

void expect_peer(SSL* ssl, const std::string& host) {
  if (!is_ip_literal(host)) SSL_set_tlsext_host_name(ssl, host.c_str());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip_literal(host)) X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
}

}  // namespace mailgate::net
