# Warnings are errors in every Quarry target (not in third-party code).
# Two g++ 12 false positives are switched off: -Wrestrict fires on
# `"literal" + std::to_string(x)` at -O2, and -Wmismatched-new-delete fires in
# Asio coroutine frames.
add_library(quarry_warnings INTERFACE)
target_compile_options(quarry_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror
  -Wno-restrict -Wno-mismatched-new-delete)

# ASan + UBSan for the test configuration. Every target links this interface so
# that libraries, tests and the executable agree.
add_library(quarry_sanitizers INTERFACE)
if(QUARRY_SANITIZE)
  target_compile_options(quarry_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1)
  target_link_options(quarry_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
