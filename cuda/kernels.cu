// The one CUDA source of the NCCL backend: compiles the kernels behind exec/cuda_launch.hpp.
#include "shardalg/exec/cuda_kernels.cuh"
