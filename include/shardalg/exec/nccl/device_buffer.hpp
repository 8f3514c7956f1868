// DeviceBuffer: device memory ordered on a stream (cudaMallocAsync / cudaFreeAsync), grown on
// demand and reused: the NCCL executor's staging and descriptors, the collective program's
// tiles. Work queued on the same stream sees the memory in order, so reuse needs no sync.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "shardalg/core/error.hpp"
#include "shardalg/exec/nccl/nccl_communicator.hpp"

namespace shardalg {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, cudaStream_t stream, index_t rank = 0) { reserve(bytes, stream, rank); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)), stream_(other.stream_) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    std::swap(stream_, other.stream_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_) cudaFreeAsync(data_, stream_);
  }

  // At least `bytes` bytes, usable by work queued on `stream` from now on (the old contents are
  // not kept when it grows).
  void reserve(std::size_t bytes, cudaStream_t stream, index_t rank = 0) {
    if (bytes <= bytes_ && stream == stream_) return;
    if (data_) detail::check_cuda(cudaFreeAsync(data_, stream_), "cudaFreeAsync", rank);
    data_ = nullptr;
    bytes_ = 0;
    stream_ = stream;
    if (bytes == 0) return;
    void* data = nullptr;
    detail::check_cuda(cudaMallocAsync(&data, bytes, stream), detail::concat("cudaMallocAsync of ", bytes, " bytes"), rank);
    data_ = static_cast<std::byte*>(data);
    bytes_ = bytes;
  }

  std::byte* data() const { return data_; }
  std::size_t size() const { return bytes_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace shardalg
