# sluice_add_test(NAME SOURCES... LABEL label [TIMEOUT s] [LIBS libs...])
# One executable per test file, registered with CTest under a label
# (unit, integration, fault) and a timeout, run from the build tree with
# SLUICE_BIN pointing at the programs.
function(sluice_add_test name)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE sluice_testlib ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "SLUICE_BIN=${CMAKE_BINARY_DIR}/bin;SLUICE_SRC=${CMAKE_SOURCE_DIR}")
endfunction()
