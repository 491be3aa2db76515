# Declarative helpers in the style of abseil's absl_cc_library: a module's
# CMakeLists.txt is a list of targets with their sources and dependencies.
#
#   quarry_cc_library(NAME aws_sigv4 SRCS sigv4.cc DEPS quarry::common)
#     -> target quarry_aws_sigv4, alias quarry::aws_sigv4
#   quarry_cc_test(NAME sigv4_test SRCS sigv4_test.cc DEPS quarry::aws_sigv4)
#     -> executable sigv4_test, registered with CTest through gtest_discover_tests

function(quarry_cc_library)
  cmake_parse_arguments(Q "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target quarry_${Q_NAME})
  if(Q_SRCS)
    add_library(${target} STATIC ${Q_SRCS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${Q_DEPS} quarry_sanitizers PRIVATE ${Q_PRIVATE_DEPS} quarry_warnings)
  else()
    add_library(${target} INTERFACE)
    target_link_libraries(${target} INTERFACE ${Q_DEPS})
  endif()
  add_library(quarry::${Q_NAME} ALIAS ${target})
endfunction()

function(quarry_cc_test)
  if(NOT QUARRY_TESTS)
    return()
  endif()
  cmake_parse_arguments(Q "" "NAME" "SRCS;DEPS;DEFINES" ${ARGN})
  add_executable(${Q_NAME} ${Q_SRCS})
  target_link_libraries(${Q_NAME} PRIVATE ${Q_DEPS} GTest::gmock GTest::gtest_main quarry_warnings quarry_sanitizers)
  target_compile_definitions(${Q_NAME} PRIVATE ${Q_DEFINES})
  target_include_directories(${Q_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  gtest_discover_tests(${Q_NAME} DISCOVERY_TIMEOUT 60
    PROPERTIES ENVIRONMENT "QUARRY_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

function(quarry_cc_benchmark)
  if(NOT QUARRY_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(Q "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${Q_NAME} ${Q_SRCS})
  target_link_libraries(${Q_NAME} PRIVATE ${Q_DEPS} benchmark::benchmark quarry_warnings)
endfunction()
