// Posts N small tickets through MessengerClient to a running Messenger (the
// fake, in its own process) and prints requests/s and this process's CPU
// time per request.
//   messenger_bench AUTH_URL CA_FILE N [IN_FLIGHT]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "mailgate/log/log.hpp"
#include "mailgate/messenger/messenger_client.hpp"

using namespace mailgate;

namespace {
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: messenger_bench AUTH_URL CA_FILE N [IN_FLIGHT]\n");
    return 64;
  }
  const int n = std::atoi(argv[3]);
  messenger::MessengerSettings s;
  s.api_key = "test-api-key";
  s.secret = "test-secret";
  s.auth_url = argv[1];
  s.tls.ca_file = argv[2];
  s.max_in_flight = argc > 4 ? static_cast<std::size_t>(std::atoi(argv[4])) : 8;
  log::set_min_level(log::Level::Warn);

  net::asio::io_context io;
  messenger::MessengerClient client(io.get_executor(), s);
  std::string user;
  net::asio::co_spawn(io, client.create_user("Bench", "bench@example.com", {"bench"}),
                      [&](std::exception_ptr, messenger::Result<std::string> r) {
                        if (r) user = r.value();
                      });
  io.run();
  if (user.empty()) {
    std::fprintf(stderr, "messenger_bench: could not create the user\n");
    return 1;
  }
  int next = 0, ok = 0;
  const messenger::CallContext ctx{"bench"};
  auto worker = [&]() -> net::asio::awaitable<void> {
    while (next < n) {
      int i = next++;
      messenger::NewTicket t{"bench ticket " + std::to_string(i), "<p>small body</p>", user, {}, {}, ""};
      auto r = co_await client.create_ticket(std::move(t), ctx);
      ok += r.ok();
    }
  };
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  io.restart();
  for (std::size_t w = 0; w < s.max_in_flight; ++w) net::asio::co_spawn(io, worker(), net::asio::detached);
  io.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf("mailgate requests=%d ok=%d in_flight=%zu connections=%zu seconds=%.3f req_per_s=%.0f cpu_us_per_req=%.1f\n",
              n, ok, s.max_in_flight, client.http().connections_opened(), wall, n / wall, cpu / n * 1e6);
  return ok == n ? 0 : 1;
}
