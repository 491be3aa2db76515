#pragma once
// Test support: a TCP socket bound to a free port on 127.0.0.1, for tests
// that play a raw server, a listener that never accepts, or need a port that
// was free a moment ago.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace quarry::testing {

// Bound (close-on-exec) to 127.0.0.1:0 and, unless `backlog` is negative,
// listening with that backlog; its address (with the chosen port) in
// *address. -1 when any step fails.
inline int BoundLoopbackSocket(int backlog, sockaddr_in* address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  *address = sockaddr_in{};
  address->sin_family = AF_INET;
  address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(*address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(address), sizeof(*address)) != 0 ||
      (backlog >= 0 && ::listen(fd, backlog) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(address), &length) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace quarry::testing
