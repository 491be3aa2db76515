#include "engine/run_store.h"

namespace quarry::engine {}  // namespace quarry::engine
