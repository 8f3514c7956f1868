// The one CUDA source of the NCCL backend: compiles the kernels behind exec/nccl/cuda_launch.hpp.
#include "shardalg/exec/nccl/cuda_kernels.cuh"
