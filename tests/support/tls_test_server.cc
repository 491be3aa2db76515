#include "tests/support/tls_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
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
#include <cstring>
#include <string_view>

#include "tests/support/loopback_socket.h"

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

// ALPN: "h2" when the client offers it; otherwise no protocol is selected and
// the client speaks HTTP/1.1.
int SelectHttp2(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
                unsigned int offered_length, void*) {
  for (unsigned int i = 0; i < offered_length; i += 1u + offered[i]) {
    if (offered[i] == 2 && i + 3 <= offered_length && offered[i + 1] == 'h' && offered[i + 2] == '2') {
      *out = offered + i + 1;
      *out_length = 2;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// --- HTTP/2 (nghttp2 server session over the TLS connection) ---

struct Http2Connection {
  SSL* ssl;
  TlsTestServer* server;
};

nghttp2_nv Header(const char* name, const char* value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)), reinterpret_cast<uint8_t*>(const_cast<char*>(value)),
          std::strlen(name), std::strlen(value), NGHTTP2_NV_FLAG_NONE};
}

ssize_t SendToClient(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
  auto* connection = static_cast<Http2Connection*>(user);
  size_t sent = 0;
  while (sent < length) {
    const int n = SSL_write(connection->ssl, data + sent, static_cast<int>(length - sent));
    if (n <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    sent += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(length);
}

ssize_t ReadOkBody(nghttp2_session*, int32_t, uint8_t* buffer, size_t, uint32_t* flags, nghttp2_data_source*, void*) {
  std::memcpy(buffer, "ok", 2);
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  return 2;
}

// A request is complete when its stream's END_STREAM arrives (on HEADERS for
// a GET, on the last DATA frame otherwise): answer it.
int OnFrameReceived(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  const bool request_frame = frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA;
  if (!request_frame || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
  static_cast<Http2Connection*>(user)->server->CountRequest();
  const nghttp2_nv headers[] = {Header(":status", "200"), Header("content-length", "2")};
  nghttp2_data_provider body{};
  body.read_callback = ReadOkBody;
  return nghttp2_submit_response(session, frame->hd.stream_id, headers, 2, &body) == 0 ? 0
                                                                                    : NGHTTP2_ERR_CALLBACK_FAILURE;
}

}  // namespace

TlsTestServer::TlsTestServer(bool offer_http2) {
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
  if (offer_http2) SSL_CTX_set_alpn_select_cb(ctx, SelectHttp2, nullptr);
  ssl_ctx_ = ctx;

  sockaddr_in address{};
  listener_ = BoundLoopbackSocket(/*backlog=*/16, &address);
  if (listener_ < 0) Die("listening on 127.0.0.1:0");
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
      ++connections_;
      const unsigned char* protocol = nullptr;
      unsigned int protocol_length = 0;
      SSL_get0_alpn_selected(ssl, &protocol, &protocol_length);
      if (protocol_length == 2 && std::memcmp(protocol, "h2", 2) == 0) {
        ServeHttp2(ssl);
      } else {
        ServeHttp1(ssl);
      }
    }
    SSL_free(ssl);
    ::close(fd);
  }
}

void TlsTestServer::ServeHttp1(void* ssl_handle) {
  SSL* ssl = static_cast<SSL*>(ssl_handle);
  std::string received;
  char buffer[4096];
  size_t head_end = std::string::npos;
  for (;;) {
    if (head_end == std::string::npos) head_end = received.find("\r\n\r\n");
    if (head_end != std::string::npos &&
        received.size() >= head_end + 4 + ContentLength(std::string_view(received).substr(0, head_end + 2))) {
      break;
    }
    const int n = SSL_read(ssl, buffer, sizeof(buffer));
    if (n <= 0) return;
    received.append(buffer, static_cast<size_t>(n));
  }
  ++requests_;
  static constexpr std::string_view kReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  SSL_write(ssl, kReply.data(), static_cast<int>(kReply.size()));
  SSL_shutdown(ssl);
}

void TlsTestServer::ServeHttp2(void* ssl_handle) {
  Http2Connection connection{static_cast<SSL*>(ssl_handle), this};
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) Die("nghttp2_session_callbacks_new");
  nghttp2_session_callbacks_set_send_callback(callbacks, SendToClient);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameReceived);
  nghttp2_session* session = nullptr;
  if (nghttp2_session_server_new(&session, callbacks, &connection) != 0) Die("nghttp2_session_server_new");
  nghttp2_session_callbacks_del(callbacks);
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
  char buffer[16384];
  // Until the client closes (or stays quiet for the socket's 5 s timeout).
  while (!stopping_ && (nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0)) {
    if (nghttp2_session_send(session) != 0) break;
    const int n = SSL_read(connection.ssl, buffer, sizeof(buffer));
    if (n <= 0) break;
    if (nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(buffer), static_cast<size_t>(n)) < 0) break;
  }
  nghttp2_session_del(session);
}

}  // namespace quarry::testing
