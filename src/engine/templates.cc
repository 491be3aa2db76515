#include "engine/templates.h"

namespace quarry::engine {}  // namespace quarry::engine
