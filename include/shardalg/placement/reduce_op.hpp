// ReduceOp: how the partial values of a Partial placement combine (PyTorch's Partial reduce_op).
// Its own header so that device code (exec/nccl/cuda_kernels.cuh) can name it without the algebra.
#pragma once

#include <cstdint>

namespace shardalg {

enum class ReduceOp : std::uint8_t { sum, avg, min, max, product };

}  // namespace shardalg
