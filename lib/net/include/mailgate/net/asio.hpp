// The one way to include Asio and Beast in mailgate. Boost 1.74's
// awaitable.hpp uses std::exchange without including <utility>, which g++ 12
// in C++20 mode rejects; including it first here fixes that everywhere.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace mailgate::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
}  // namespace mailgate::net
