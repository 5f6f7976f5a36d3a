// Incoming: one message's bytes on their way to tmp/ — buffered, hashed for
// the seen-set, the first bytes kept to find its Message-ID.
#include "mailgate/spool/spool.hpp"

#include "intake.hpp"
#include "mailgate/text/encoding.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mailgate::spool {
namespace {

constexpr std::size_t kWriteBuffer = 256 * 1024;

}  // namespace

struct Incoming::Hash {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string hex;  // set once the digest is final
  Hash() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Hash() { EVP_MD_CTX_free(ctx); }
};

Incoming::Incoming(Spool& spool, std::string id, std::string path, int fd)
    : spool_(&spool), id_(std::move(id)), path_(std::move(path)), fd_(fd), hash_(std::make_unique<Hash>()) {
  buffer_.reserve(kWriteBuffer);
}

Incoming::Incoming(Incoming&& o) noexcept
    : spool_(o.spool_), id_(std::move(o.id_)), path_(std::move(o.path_)), error_(std::move(o.error_)),
      error_refusal_(o.error_refusal_), fd_(o.fd_),
      size_(o.size_), buffer_(std::move(o.buffer_)), header_(std::move(o.header_)), envelope_(std::move(o.envelope_)),
      hash_(std::move(o.hash_)) {
  o.fd_ = -1;
  o.path_.clear();
}

Incoming::~Incoming() { discard(); }

void Incoming::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

bool Incoming::flush() {
  std::size_t off = 0;
  while (off < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const bool full = errno == ENOSPC || errno == EDQUOT;
      error_ = full ? "spool disk full" : std::string("spool write failed: ") + std::strerror(errno);
      error_refusal_ = full ? Refusal::DiskFull : Refusal::Temporary;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  buffer_.clear();
  return true;
}

bool Incoming::write(std::string_view bytes) {
  if (!error_.empty() || fd_ < 0) return false;
  if (header_.size() < kHeaderScan) header_.append(bytes.substr(0, kHeaderScan - header_.size()));
  EVP_DigestUpdate(hash_->ctx, bytes.data(), bytes.size());
  size_ += bytes.size();
  if (buffer_.size() + bytes.size() > kWriteBuffer) {
    if (!flush()) return false;
    if (bytes.size() > kWriteBuffer) {
      buffer_.assign(bytes);
      return flush();
    }
  }
  buffer_.append(bytes);
  return true;
}

std::string Incoming::sha256_hex() {
  if (hash_->hex.empty()) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(hash_->ctx, d, &n);
    hash_->hex = text::hex_lower(std::string_view(reinterpret_cast<const char*>(d), n));
  }
  return hash_->hex;
}

}  // namespace mailgate::spool
