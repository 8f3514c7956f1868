// The CUDA kernels' host entry points, as plain C++ (compiled by g++ or nvcc): the NCCL executor
// calls them, and exec/nccl/cuda_kernels.cuh defines them. A header-only library cannot compile a
// kernel for its user, so exactly one CUDA source of the program includes cuda_kernels.cuh
// (CMake: link shardalg::cuda, which is that one source).
//
// Each launch runs a batch of BoxCopy descriptors (box_copy.hpp) already in device memory, on
// `stream`, asynchronously; errors of the launch itself are returned as cudaError_t.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "shardalg/exec/nccl/box_copy.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/placement/reduce_op.hpp"

namespace shardalg {

namespace cuda {

// dst rows = src rows, for `units` units in `count` copies (units: the batch's total).
cudaError_t launch_copies(const BoxCopy* copies, std::int64_t count, std::int64_t units, cudaStream_t stream);

// dst = dst (op) src element-wise (avg: dst + src / contributors).
cudaError_t launch_reductions(const BoxCopy* copies, std::int64_t count, std::int64_t units, DType dtype, ReduceOp op,
                              std::int64_t contributors, cudaStream_t stream);

// dst = the identity of op (0, 1, +inf / the largest, -inf / the lowest); src is not read.
cudaError_t launch_fill_identity(const BoxCopy* copies, std::int64_t count, std::int64_t units, DType dtype, ReduceOp op,
                                 cudaStream_t stream);

}  // namespace cuda
}  // namespace shardalg
