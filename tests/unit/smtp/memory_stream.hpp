// An in-memory connection for protocol tests: the client's bytes are a
// script given up front, cut into the pieces a test chooses (one read returns
// at most one piece, so a test decides where TCP would have split them); what
// the server writes is collected. After the script: EOF, or (`hang`) a client
// that stays connected and silent until the server's deadline cancels the read.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "mailgate/net/line_reader.hpp"

namespace mailgate::test {

class MemoryStream final : public net::ByteStream {
 public:
  MemoryStream(net::asio::any_io_executor ex, std::vector<std::string> pieces, bool hang)
      : ex_(ex), pieces_(pieces.begin(), pieces.end()), hang_(hang), silence_(ex) {}

  net::asio::awaitable<std::size_t> read_some(net::asio::mutable_buffer into, boost::system::error_code& ec) override {
    while (!pieces_.empty() && pieces_.front().empty()) pieces_.pop_front();
    if (pieces_.empty()) {
      if (!hang_) {
        ec = net::asio::error::eof;
        co_return 0;
      }
      silence_.expires_at(net::asio::steady_timer::time_point::max());
      co_await silence_.async_wait(net::asio::redirect_error(net::asio::use_awaitable, ec));
      if (!ec) ec = net::asio::error::eof;
      co_return 0;
    }
    std::string& piece = pieces_.front();
    const std::size_t n = std::min(piece.size(), into.size());
    piece.copy(static_cast<char*>(into.data()), n);
    piece.erase(0, n);
    co_return n;
  }

  net::asio::awaitable<void> write(net::asio::const_buffer data, boost::system::error_code&) override {
    output.append(static_cast<const char*>(data.data()), data.size());
    co_return;
  }

  void cancel() override { silence_.cancel(); }
  net::asio::any_io_executor executor() override { return ex_; }

  std::string output;  // everything the server wrote

 private:
  net::asio::any_io_executor ex_;
  std::deque<std::string> pieces_;
  bool hang_;
  net::asio::steady_timer silence_;
};

}  // namespace mailgate::test
