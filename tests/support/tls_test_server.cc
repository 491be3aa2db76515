#include "tests/support/tls_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace quarry::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "TlsTestServer: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

EVP_PKEY* NewKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) Die("EVP_EC_gen");
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension == nullptr || X509_add_ext(cert, extension, -1) != 1) Die("X509_add_ext");
  X509_EXTENSION_free(extension);
}

// A certificate for `key`: a self-signed CA when `issuer` is null, otherwise a
// server certificate for 127.0.0.1 signed by `issuer` / `issuer_key`.
X509* MakeCertificate(EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key, long serial) {
  X509* cert = X509_new();
  if (cert == nullptr) Die("X509_new");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24L * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                             0);
  const bool is_ca = issuer == nullptr;
  X509* signer = is_ca ? cert : issuer;
  X509_set_issuer_name(cert, X509_get_subject_name(signer));
  if (is_ca) {
    AddExtension(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    AddExtension(cert, signer, NID_subject_key_identifier, "hash");
  } else {
    AddExtension(cert, signer, NID_basic_constraints, "CA:FALSE");
    AddExtension(cert, signer, NID_subject_alt_name, "IP:127.0.0.1");
    AddExtension(cert, signer, NID_ext_key_usage, "serverAuth");
    AddExtension(cert, signer, NID_authority_key_identifier, "keyid:always");
  }
  if (X509_sign(cert, is_ca ? key : issuer_key, EVP_sha256()) == 0) Die("X509_sign");
  return cert;
}

void WriteCertificate(const std::string& path, X509* cert) {
  FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr || PEM_write_X509(out, cert) != 1) Die("PEM_write_X509");
  std::fclose(out);
}

void WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr || PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    Die("PEM_write_PrivateKey");
  }
  std::fclose(out);
}

// The Content-Length of a request head (0 when absent).
size_t ContentLength(std::string_view head) {
  std::string lower(head);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const size_t at = lower.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;
  return std::strtoul(lower.c_str() + at + 17, nullptr, 10);
}

}  // namespace

TlsTestServer::TlsTestServer() {
  EVP_PKEY* ca_key = NewKey();
  X509* ca = MakeCertificate(ca_key, "Quarry test CA", nullptr, nullptr, 1);
  EVP_PKEY* server_key = NewKey();
  X509* server = MakeCertificate(server_key, "127.0.0.1", ca, ca_key, 2);
  EVP_PKEY* other_key = NewKey();
  X509* other_ca = MakeCertificate(other_key, "Unrelated test CA", nullptr, nullptr, 3);
  ca_file_ = dir_.Path("ca.pem");
  unrelated_ca_file_ = dir_.Path("unrelated-ca.pem");
  cert_file_ = dir_.Path("server.pem");
  key_file_ = dir_.Path("server-key.pem");
  WriteCertificate(ca_file_, ca);
  WriteCertificate(unrelated_ca_file_, other_ca);
  WriteCertificate(cert_file_, server);
  WriteKey(key_file_, server_key);
  X509_free(other_ca);
  EVP_PKEY_free(other_key);
  X509_free(server);
  EVP_PKEY_free(server_key);
  X509_free(ca);
  EVP_PKEY_free(ca_key);

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) Die("SSL_CTX_new");
  if (SSL_CTX_use_certificate_file(ctx, cert_file_.c_str(), SSL_FILETYPE_PEM) != 1) Die("SSL_CTX_use_certificate_file");
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file_.c_str(), SSL_FILETYPE_PEM) != 1) Die("SSL_CTX_use_PrivateKey_file");
  ssl_ctx_ = ctx;

  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Die("listening on 127.0.0.1:0");
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

TlsTestServer::~TlsTestServer() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(listener_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
}

std::string TlsTestServer::base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }

void TlsTestServer::Serve() {
  while (!stopping_) {
    pollfd ready{listener_, POLLIN, 0};
    if (::poll(&ready, 1, 100) <= 0) continue;  // wakes up to look at stopping_
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval timeout{5, 0};  // a client that goes quiet cannot hold the server
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ssl_ctx_));
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      std::string received;
      char buffer[4096];
      size_t head_end = std::string::npos;
      bool complete = false;
      for (;;) {
        if (head_end == std::string::npos) head_end = received.find("\r\n\r\n");
        if (head_end != std::string::npos &&
            received.size() >= head_end + 4 + ContentLength(std::string_view(received).substr(0, head_end + 2))) {
          complete = true;
          break;
        }
        const int n = SSL_read(ssl, buffer, sizeof(buffer));
        if (n <= 0) break;
        received.append(buffer, static_cast<size_t>(n));
      }
      if (complete) {
        ++requests_;
        static constexpr std::string_view kReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        SSL_write(ssl, kReply.data(), static_cast<int>(kReply.size()));
        SSL_shutdown(ssl);
      }
    }
    SSL_free(ssl);
    ::close(fd);
  }
}

}  // namespace quarry::testing
