#include "engine/pricing.h"

namespace quarry::engine {}  // namespace quarry::engine
