# Installs the build into a fresh prefix and imports shardalg from there (not from the build
# tree): the installed package is complete. Run with cmake -P; BUILD_DIR, PREFIX, PYTHON and
# PACKAGE_DIR (relative to the prefix) are set.
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} RESULT_VARIABLE result OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${err}")
endif()
set(ENV{PYTHONPATH} ${PREFIX}/${PACKAGE_DIR})
execute_process(COMMAND ${PYTHON} -c [=[
import os, sys, shardalg
assert shardalg.__file__.startswith(os.environ["PYTHONPATH"]), shardalg.__file__
for name in ("__init__.pyi", "torch.pyi", "py.typed", "torch.py"):
    assert os.path.exists(os.path.join(os.path.dirname(shardalg.__file__), name)), name
layout = shardalg.MeshLayout.parse("dp=4,tp=2", "_S(0,2),S(0)", (14336, 4096))
assert layout.shard_info(5).local_shape == (1792, 4096)
print("installed shardalg imports from", os.path.dirname(shardalg.__file__))
]=] WORKING_DIRECTORY ${PREFIX} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the installed package does not import:\n${out}\n${err}")
endif()
message(STATUS "${out}")
