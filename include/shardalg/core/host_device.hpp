// SHARDALG_HOST_DEVICE marks a function that both the host compiler and nvcc's device pass
// compile (__host__ __device__ under nvcc, nothing otherwise): the few pieces of the algebra that
// CUDA kernels run exactly as the host does.
#pragma once

#if defined(__CUDACC__)
#define SHARDALG_HOST_DEVICE __host__ __device__
#else
#define SHARDALG_HOST_DEVICE
#endif
