#include "engine/automation_spec.h"

namespace quarry::engine {}  // namespace quarry::engine
