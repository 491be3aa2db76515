#include "engine/expressions.h"

namespace quarry::engine {}  // namespace quarry::engine
