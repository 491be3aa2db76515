#include "cli/demo_tickets.h"

namespace quarry::cli {

const std::vector<DemoTicket>& DemoTickets() {
  static const std::vector<DemoTicket> tickets;
  return tickets;
}

}  // namespace quarry::cli
