// fake-messenger: the fake Messenger API as a process, for end-to-end tests
// of `mailgate serve` and for benchmarks. Prints "listening PORT" on stdout
// once it accepts connections; stops on SIGTERM/SIGINT. Control it over
// HTTP at /_fake/config and read it at /_fake/state (see fake_messenger.cpp).
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <unistd.h>

#include "fake_messenger.hpp"

int main(int argc, char** argv) {
  mailgate::testing::FakeMessengerOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port") o.port = static_cast<std::uint16_t>(std::stoi(value));
    else if (flag == "--cert") o.cert_file = value;
    else if (flag == "--key") o.key_file = value;
    else if (flag == "--api-key") o.api_key = value;
    else if (flag == "--secret") o.secret = value;
    else if (flag == "--host") o.host = value;
    else if (flag == "--token-lifetime") o.token_lifetime = std::chrono::seconds(std::stoi(value));
    else if (flag == "--threads") o.threads = std::stoi(value);
    else {
      std::cerr << "usage: fake-messenger [--port N] [--cert PEM --key PEM] [--api-key K] [--secret S]"
                   " [--host NAME] [--token-lifetime SECONDS] [--threads N]\n";
      return 64;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // the server thread inherits the mask
  mailgate::testing::FakeMessenger fake(o);
  std::cout << "listening " << fake.port() << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
