# Runs COMMAND (a ;-list) and checks its exit code (EXIT) and that its
# standard error matches STDERR, a regular expression.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result EQUAL EXIT)
  message(FATAL_ERROR "exit code ${result}, expected ${EXIT}\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${STDERR}")
  message(FATAL_ERROR "stderr does not match '${STDERR}': ${err}")
endif()
string(REGEX MATCHALL "\n" lines "${err}")
list(LENGTH lines count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "expected one line on stderr, got ${count}: ${err}")
endif()
