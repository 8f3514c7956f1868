// The element arithmetic of Partial reductions, written once for the host (exec/element_ops.hpp,
// the simulators) and the CUDA kernels (exec/nccl/cuda_kernels.cuh), so that the host tests check the
// arithmetic the device runs. Values combine in their compute type (float for bf16 and fp16);
// integer sums, averages and products wrap, as on GPUs, instead of overflowing; min and max keep
// the target when the two compare equal or unordered. Plain C++ that nvcc also compiles.
//
// Example: reduce_value(2.0f, 3.0f, ReduceOp::avg, 2) == 3.5f (the target plus 3 / 2);
//          identity_value<float>(ReduceOp::min) == +infinity, identity_value<int>(ReduceOp::max) == INT_MIN.
#pragma once

#include <cstdint>
#include <type_traits>
#if defined(__CUDACC__)
#include <cuda/std/limits>
#else
#include <limits>
#endif

#include "shardalg/core/host_device.hpp"
#include "shardalg/placement/reduce_op.hpp"

namespace shardalg::detail {

#if defined(__CUDACC__)
template <class T>
using limits_of = ::cuda::std::numeric_limits<T>;
#else
template <class T>
using limits_of = std::numeric_limits<T>;
#endif

// target (op) value; avg adds value / contributors.
template <class T>
SHARDALG_HOST_DEVICE T reduce_value(T target, T value, ReduceOp op, std::int64_t contributors) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    if (op == ReduceOp::sum) return static_cast<T>(static_cast<U>(static_cast<U>(target) + static_cast<U>(value)));
    if (op == ReduceOp::avg) return static_cast<T>(static_cast<U>(static_cast<U>(target) + static_cast<U>(value / static_cast<T>(contributors))));
    if (op == ReduceOp::product) return static_cast<T>(static_cast<U>(static_cast<U>(target) * static_cast<U>(value)));
  }
  switch (op) {
    case ReduceOp::sum: return target + value;
    case ReduceOp::avg: return target + value / static_cast<T>(contributors);
    case ReduceOp::product: return target * value;
    case ReduceOp::min: return value < target ? value : target;
    case ReduceOp::max: return target < value ? value : target;
  }
  return target;
}

// The value every reduction of `op` starts from: 0, 1, +infinity (or the largest) for min,
// -infinity (or the lowest) for max.
template <class T>
SHARDALG_HOST_DEVICE T identity_value(ReduceOp op) {
  switch (op) {
    case ReduceOp::product: return T(1);
    case ReduceOp::min: return limits_of<T>::has_infinity ? limits_of<T>::infinity() : limits_of<T>::max();
    case ReduceOp::max: return limits_of<T>::has_infinity ? -limits_of<T>::infinity() : limits_of<T>::lowest();
    default: return T(0);
  }
}

}  // namespace shardalg::detail
