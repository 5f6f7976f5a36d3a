// The Messenger client settings the processor tests use against the
// in-process fake: plain http on loopback, retries in milliseconds.
#pragma once

#include <chrono>

#include "fake_messenger.hpp"
#include "mailgate/messenger/messenger_client.hpp"

namespace mailgate::pipeline::test {

inline messenger::MessengerSettings fake_client_settings(const mailgate::testing::FakeMessenger& fake) {
  messenger::MessengerSettings s;
  s.api_key = "test-api-key";
  s.secret = "test-secret";
  s.auth_url = fake.auth_url();
  s.allow_plain_http = true;
  s.backoff.base = std::chrono::milliseconds(10);
  s.backoff.cap = std::chrono::milliseconds(50);
  return s;
}

}  // namespace mailgate::pipeline::test
