// The CUDA kernels behind exec/nccl/cuda_launch.hpp. Include this file in exactly one CUDA source of a
// program (CMake's shardalg::cuda target is such a source), compiled by nvcc.
//
// One warp per unit of a batch (box_copy.hpp: at most BoxCopy::unit_bytes of one row), units in
// a grid-stride loop; a warp finds its copy by binary search over the copies' first units. Copies
// move the widest word both sides are aligned to; reductions and fills walk elements.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "shardalg/exec/nccl/box_copy.hpp"
#include "shardalg/exec/nccl/cuda_launch.hpp"
#include "shardalg/exec/reduce_arithmetic.hpp"

namespace shardalg::cuda {

namespace kernels {

inline constexpr int threads_per_block = 256;
inline constexpr int warp = 32;

// Blocks for `units` warps, capped: the grid-stride loop covers the rest.
inline unsigned blocks_for(std::int64_t units) {
  std::int64_t warps_per_block = threads_per_block / warp;
  std::int64_t blocks = (units + warps_per_block - 1) / warps_per_block;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

// Calls f(copy, unit within it, lane) for this warp's units.
template <class F>
__device__ void for_each_unit(const BoxCopy* copies, std::int64_t count, std::int64_t units, F f) {
  std::int64_t first = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / warp;
  std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x / warp;
  int lane = static_cast<int>(threadIdx.x % warp);
  for (std::int64_t unit = first; unit < units; unit += stride) {
    const BoxCopy& c = copies[copy_of_unit(copies, count, unit)];
    f(c, unit - c.first_unit, lane);
  }
}

__global__ void copy_boxes(const BoxCopy* copies, std::int64_t count, std::int64_t units) {
  for_each_unit(copies, count, units, [](const BoxCopy& c, std::int64_t unit, int lane) { copy_unit(c, unit, lane, warp); });
}

// How elements of each dtype with arithmetic are stored (S) and computed (C).
template <DType D> struct Element;
template <> struct Element<DType::fp32> { using S = float; using C = float; };
template <> struct Element<DType::fp64> { using S = double; using C = double; };
template <> struct Element<DType::int32> { using S = std::int32_t; using C = std::int32_t; };
template <> struct Element<DType::int64> { using S = std::int64_t; using C = std::int64_t; };
template <> struct Element<DType::int8> { using S = std::int8_t; using C = std::int8_t; };
template <> struct Element<DType::int16> { using S = std::int16_t; using C = std::int16_t; };
template <> struct Element<DType::bf16> { using S = __nv_bfloat16; using C = float; };
template <> struct Element<DType::fp16> { using S = __half; using C = float; };

template <class C, class S>
__device__ C load(const S& s) {
  if constexpr (std::is_same_v<S, __nv_bfloat16>) return __bfloat162float(s);
  else if constexpr (std::is_same_v<S, __half>) return __half2float(s);
  else return s;
}
template <class S, class C>
__device__ S store(C value) {
  if constexpr (std::is_same_v<S, __nv_bfloat16>) return __float2bfloat16_rn(value);
  else if constexpr (std::is_same_v<S, __half>) return __float2half_rn(value);
  else return value;
}

template <DType D>
__global__ void reduce_boxes(const BoxCopy* copies, std::int64_t count, std::int64_t units, ReduceOp op, std::int64_t contributors) {
  using S = typename Element<D>::S;
  using C = typename Element<D>::C;
  for_each_unit(copies, count, units, [&](const BoxCopy& c, std::int64_t unit, int lane) {
    UnitSpan span = unit_span(c, unit);
    auto* target = reinterpret_cast<S*>(span.dst);
    const auto* values = reinterpret_cast<const S*>(span.src);
    for (std::int64_t i = lane; i < span.bytes / static_cast<std::int64_t>(sizeof(S)); i += warp)
      target[i] = store<S>(detail::reduce_value<C>(load<C>(target[i]), load<C>(values[i]), op, contributors));
  });
}

template <DType D>
__global__ void fill_boxes(const BoxCopy* copies, std::int64_t count, std::int64_t units, ReduceOp op) {
  using S = typename Element<D>::S;
  using C = typename Element<D>::C;
  for_each_unit(copies, count, units, [&](const BoxCopy& c, std::int64_t unit, int lane) {
    UnitSpan span = unit_span(c, unit);
    auto* target = reinterpret_cast<S*>(span.dst);
    S value = store<S>(detail::identity_value<C>(op));
    for (std::int64_t i = lane; i < span.bytes / static_cast<std::int64_t>(sizeof(S)); i += warp) target[i] = value;
  });
}

// Calls f(std::integral_constant<DType, d>{}) for the run-time dtype d.
template <class F>
cudaError_t with_dtype(DType dtype, F f) {
  switch (dtype) {
    case DType::fp32: return f(std::integral_constant<DType, DType::fp32>{});
    case DType::fp64: return f(std::integral_constant<DType, DType::fp64>{});
    case DType::int32: return f(std::integral_constant<DType, DType::int32>{});
    case DType::int64: return f(std::integral_constant<DType, DType::int64>{});
    case DType::int8: return f(std::integral_constant<DType, DType::int8>{});
    case DType::int16: return f(std::integral_constant<DType, DType::int16>{});
    case DType::bf16: return f(std::integral_constant<DType, DType::bf16>{});
    case DType::fp16: return f(std::integral_constant<DType, DType::fp16>{});
    case DType::fp8:
    case DType::bytes:
    case DType::boolean:
    case DType::complex64:
    case DType::complex128: break;  // no arithmetic: refused on the host before any launch
  }
  return cudaErrorInvalidValue;
}

}  // namespace kernels

cudaError_t launch_copies(const BoxCopy* copies, std::int64_t count, std::int64_t units, cudaStream_t stream) {
  if (units == 0) return cudaSuccess;
  kernels::copy_boxes<<<kernels::blocks_for(units), kernels::threads_per_block, 0, stream>>>(copies, count, units);
  return cudaGetLastError();
}

cudaError_t launch_reductions(const BoxCopy* copies, std::int64_t count, std::int64_t units, DType dtype, ReduceOp op,
                              std::int64_t contributors, cudaStream_t stream) {
  if (units == 0) return cudaSuccess;
  return kernels::with_dtype(dtype, [&](auto d) {
    kernels::reduce_boxes<decltype(d)::value><<<kernels::blocks_for(units), kernels::threads_per_block, 0, stream>>>(copies, count, units, op,
                                                                                                                   contributors);
    return cudaGetLastError();
  });
}

cudaError_t launch_fill_identity(const BoxCopy* copies, std::int64_t count, std::int64_t units, DType dtype, ReduceOp op,
                                 cudaStream_t stream) {
  if (units == 0) return cudaSuccess;
  return kernels::with_dtype(dtype, [&](auto d) {
    kernels::fill_boxes<decltype(d)::value><<<kernels::blocks_for(units), kernels::threads_per_block, 0, stream>>>(copies, count, units, op);
    return cudaGetLastError();
  });
}

}  // namespace shardalg::cuda
