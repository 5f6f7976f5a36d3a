// What the MessengerClient tests share: a test PKI made with the openssl
// command line, settings for a client of the in-process fake, and running
// one coroutine to completion.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include "mailgate/messenger/messenger_client.hpp"

#include "fake_messenger.hpp"

namespace mailgate::messenger_test {

namespace fs = std::filesystem;
using messenger::CallContext;
using messenger::MessengerSettings;
using mailgate::testing::FakeMessenger;
using mailgate::testing::FakeMessengerOptions;
using std::chrono::milliseconds;

// Test PKI made with the openssl command line, as an operator would.
struct TestPki {
  fs::path dir;
  std::string ca, server_cert, server_key, wrong_host_cert, wrong_host_key, other_ca;
};

inline TestPki& pki() {
  static TestPki p = [] {
    TestPki t;
    t.dir = fs::temp_directory_path() / ("mailgate-pki-" + std::to_string(getpid()));
    fs::create_directories(t.dir);
    auto sh = [&](const std::string& cmd) {
      std::string full = "cd '" + t.dir.string() + "' && " + cmd + " >/dev/null 2>&1";
      if (std::system(full.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    };
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    sh("openssl req -x509 " + key + " -keyout ca.key -out ca.pem -days 2 -subj '/CN=mailgate test CA'");
    sh("openssl req -x509 " + key + " -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=someone else'");
    auto leaf = [&](const std::string& name, const std::string& san) {
      sh("openssl req " + key + " -keyout " + name + ".key -out " + name + ".csr -subj '/CN=" + name + "'");
      sh("printf 'subjectAltName=" + san + "\\n' > " + name + ".ext");
      sh("openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out " + name +
         ".pem -days 2 -extfile " + name + ".ext");
    };
    leaf("localhost", "DNS:localhost,IP:127.0.0.1");
    leaf("wrong", "DNS:wrong.example");
    t.ca = (t.dir / "ca.pem").string();
    t.other_ca = (t.dir / "other-ca.pem").string();
    t.server_cert = (t.dir / "localhost.pem").string();
    t.server_key = (t.dir / "localhost.key").string();
    t.wrong_host_cert = (t.dir / "wrong.pem").string();
    t.wrong_host_key = (t.dir / "wrong.key").string();
    return t;
  }();
  return p;
}

inline FakeMessengerOptions tls_fake_options() {
  FakeMessengerOptions o;
  o.cert_file = pki().server_cert;
  o.key_file = pki().server_key;
  return o;
}

inline MessengerSettings settings_for(const FakeMessenger& fake) {
  MessengerSettings s;
  s.api_key = "test-api-key";
  s.secret = "test-secret";
  s.auth_url = fake.auth_url();
  s.tls.ca_file = pki().ca;
  s.backoff.base = milliseconds(20);
  s.backoff.cap = milliseconds(200);
  s.retry_for = milliseconds(20'000);
  s.http.read_timeout = milliseconds(3'000);
  return s;
}

// Runs one coroutine to completion on `io`.
template <class T>
T run(net::asio::io_context& io, net::asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr failure;
  net::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) failure = e;
    else out.emplace(std::move(value));
  });
  io.restart();
  io.run();
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

inline std::string bytes_of(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline const CallContext kCtx{"test-spool-id"};

class MessengerClientTest : public ::testing::Test {
 protected:
  net::asio::io_context io;
};

}  // namespace mailgate::messenger_test
