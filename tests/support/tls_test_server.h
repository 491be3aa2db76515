#pragma once
// Test support: a real TLS server on 127.0.0.1 (port 0) with its own freshly
// made certificate authority, for testing certificate verification and CA
// bundles without any file from outside the test.
//
// The CA and the server certificate (for IP 127.0.0.1, valid for a day) are
// written as PEM files into a scratch directory. The server answers each
// request with `200 ok` (Content-Length: 2, Connection: close), one connection
// at a time, on its own thread; it negotiates no ALPN, so clients speak
// HTTP/1.1. A client that refuses the certificate simply closes; the server
// then waits for the next connection. The destructor stops and joins the thread.

#include <atomic>
#include <string>
#include <thread>

#include "tests/support/scratch_dir.h"

namespace quarry::testing {

class TlsTestServer {
 public:
  TlsTestServer();  // aborts the test process if OpenSSL cannot set it up
  ~TlsTestServer();
  TlsTestServer(const TlsTestServer&) = delete;
  TlsTestServer& operator=(const TlsTestServer&) = delete;

  // "https://127.0.0.1:PORT"
  std::string base_url() const;
  // The CA that signed the server's certificate, as a PEM file.
  const std::string& ca_file() const { return ca_file_; }
  // Another CA's certificate (it signed nothing here), as a PEM file.
  const std::string& unrelated_ca_file() const { return unrelated_ca_file_; }
  // Requests answered so far.
  int requests() const { return requests_.load(); }

 private:
  void Serve();

  ScratchDir dir_;
  std::string ca_file_, unrelated_ca_file_, cert_file_, key_file_;
  int listener_ = -1;
  int port_ = 0;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*, kept out of this header
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

}  // namespace quarry::testing
