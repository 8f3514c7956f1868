# Builds and runs the consumer project in package/consumer against shardalg, either installed
# (find_package) or as a subdirectory. Run with cmake -P; SOURCE_DIR, WORK_DIR and MODE are set.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "command failed (${result}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
set(consumer ${SOURCE_DIR}/tests/package/consumer)
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -DSHARDALG_BUILD_TESTS=OFF -DSHARDALG_BUILD_TOOLS=OFF
      -DSHARDALG_BUILD_BENCHMARKS=OFF -DSHARDALG_BUILD_EXAMPLES=OFF -DSHARDALG_BUILD_PYTHON=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/consumer -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
      -DSHARDALG_CONSUMER_MODE=find_package)
  # By hand, as a build without CMake would: the flags from the installed pkg-config file.
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${WORK_DIR}/prefix/share/pkgconfig)
  execute_process(COMMAND ${PKG_CONFIG} --cflags shardalg OUTPUT_VARIABLE cflags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE result)
  if(NOT result EQUAL 0 OR NOT cflags MATCHES "eigen3")
    message(FATAL_ERROR "pkg-config --cflags shardalg failed or lacks Eigen's include dir: '${cflags}'")
  endif()
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  run(${CXX} ${cflags} ${consumer}/main.cpp -o ${WORK_DIR}/by_hand)
  run(${WORK_DIR}/by_hand)
else()
  run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/consumer -DSHARDALG_SOURCE_DIR=${SOURCE_DIR}
      -DSHARDALG_CONSUMER_MODE=add_subdirectory)
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
run(${WORK_DIR}/consumer/consumer)
message(STATUS "consumer built and ran (${MODE})")
