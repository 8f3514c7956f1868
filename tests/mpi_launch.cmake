# How tests start MPI programs: mpirun with --oversubscribe (CI machines have fewer cores than
# ranks) and, as root, --allow-run-as-root. ASan's leak checker is off for MPI programs: OpenMPI
# keeps allocations until exit that it reports as leaks.
find_package(MPI REQUIRED COMPONENTS CXX)
set(SHARDALG_MPIRUN_FLAGS --oversubscribe)
execute_process(COMMAND id -u OUTPUT_VARIABLE shardalg_uid OUTPUT_STRIP_TRAILING_WHITESPACE)
if(shardalg_uid STREQUAL "0")
  list(APPEND SHARDALG_MPIRUN_FLAGS --allow-run-as-root)
endif()
set(SHARDALG_MPIRUN ${MPIEXEC_EXECUTABLE} ${SHARDALG_MPIRUN_FLAGS})
set(SHARDALG_MPI_ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0;OMPI_MCA_rmaps_base_oversubscribe=1")
