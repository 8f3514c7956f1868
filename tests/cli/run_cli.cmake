# Runs the CLI and checks its exit code, its output and (optionally) a file it wrote.
# Variables: CLI (program), ARGS (;-list), CODE (expected exit code), EXPECT (regex the combined
# output must match), REJECT (regex it must not match), FILE and FILE_EXPECT (a written file and
# a regex for its content).
execute_process(COMMAND ${CLI} ${ARGS} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT code EQUAL CODE)
  message(FATAL_ERROR "exit code ${code}, expected ${CODE}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED EXPECT AND NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}'\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED REJECT AND "${out}${err}" MATCHES "${REJECT}")
  message(FATAL_ERROR "output matches '${REJECT}'\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(DEFINED FILE)
  file(READ ${FILE} content)
  if(NOT content MATCHES "${FILE_EXPECT}")
    message(FATAL_ERROR "${FILE} does not match '${FILE_EXPECT}'")
  endif()
endif()
