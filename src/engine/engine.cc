#include "engine/engine.h"

namespace quarry::engine {}  // namespace quarry::engine
