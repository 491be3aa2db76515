#pragma once
// The IT-support tickets `quarry demo` inserts (placeholder).

#include <string>
#include <vector>

namespace quarry::cli {

struct DemoTicket {
  std::string title{};
  std::string description{};
  std::string requester{};  // e-mail
};

// About fifty realistic tickets.
const std::vector<DemoTicket>& DemoTickets();

}  // namespace quarry::cli
