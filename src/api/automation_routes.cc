// Automation routes (placeholder until the automation API lands).
#include "api/api.h"

namespace quarry::api {

void RegisterAutomationRoutes(Router& router, ServerContext& context) {
  (void)router;
  (void)context;
}

}  // namespace quarry::api
