#include "engine/rate_limiter.h"

namespace quarry::engine {}  // namespace quarry::engine
