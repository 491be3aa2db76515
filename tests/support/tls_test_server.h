#pragma once
// Test support: a real TLS server on 127.0.0.1 (port 0) with its own freshly
// made certificate authority, for testing certificate verification and CA
// bundles without any file from outside the test.
//
// The CA and the server certificate (for IP 127.0.0.1, valid for a day) are
// written as PEM files into a scratch directory. The server answers each
// request with `200 ok` (content-length 2), one connection at a time, on its
// own thread. Without HTTP/2 it negotiates no ALPN, so clients speak HTTP/1.1
// (Connection: close, one request per connection). With HTTP/2 it selects
// "h2" when the client offers it (as AWS endpoints do) and serves every
// stream of the connection (nghttp2), each answered once its request is
// complete. A client that refuses the certificate simply closes; the server
// then waits for the next connection. The destructor stops and joins the thread.

#include <atomic>
#include <string>
#include <thread>

#include "tests/support/scratch_dir.h"

namespace quarry::testing {

class TlsTestServer {
 public:
  // Aborts the test process if OpenSSL cannot set it up.
  explicit TlsTestServer(bool offer_http2 = false);
  ~TlsTestServer();
  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;

  // "https://127.0.0.1:PORT"
  std::string base_url() const;
  // The CA that signed the server's certificate, as a PEM file.
  const std::string& ca_file() const { return ca_file_; }
  // Another CA's certificate (it signed nothing here), as a PEM file.
  const std::string& unrelated_ca_file() const { return unrelated_ca_file_; }
  // Requests answered so far, and connections whose TLS handshake succeeded.
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

  // For the HTTP/2 session callbacks.
  void CountRequest() { ++requests_; }

 private:
  void Serve();
  void ServeHttp1(void* ssl);
  void ServeHttp2(void* ssl);

  ScratchDir dir_;
  std::string ca_file_, unrelated_ca_file_, cert_file_, key_file_;
  int listener_ = -1;
  int port_ = 0;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*, kept out of this header
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace quarry::testing
