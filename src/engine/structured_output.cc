#include "engine/structured_output.h"

namespace quarry::engine {}  // namespace quarry::engine
