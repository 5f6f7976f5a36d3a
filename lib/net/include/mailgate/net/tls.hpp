// TLS client setup shared by every outgoing connection (Messenger API, IMAP):
// TLS 1.2 or later, the system's CAs plus an optional extra CA, and the
// certificate checked against the name we dialled (or the IP literal).
#pragma once

#include <string>

#include "mailgate/net/asio.hpp"

namespace mailgate::net {

struct TlsSettings {
  std::string ca_file;        // extra PEM trust anchor, "" for none
  bool system_store = true;   // also trust the system's CAs
};

// Throws when ca_file cannot be loaded (a start-up error).
ssl::context make_client_tls_context(const TlsSettings& tls);

// SNI and host-name (or IP) verification for one connection, before its handshake.
void expect_peer(SSL* ssl, const std::string& host);

bool is_ip_literal(const std::string& host);

}  // namespace mailgate::net
