#include "engine/call_cache.h"

namespace quarry::engine {}  // namespace quarry::engine
