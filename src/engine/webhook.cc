#include "engine/webhook.h"

namespace quarry::engine {}  // namespace quarry::engine
