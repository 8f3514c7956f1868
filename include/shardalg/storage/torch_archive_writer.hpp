// A torch.save archive of one contiguous tensor, laid out before its data exists: the bytes
// before the data (zip local header, data.pkl, the data entry's local header), where the data
// goes, and the bytes after it (the version entry, the central directory, the end records), so a
// writer streams the data in bands straight to its place and patches in its CRC-32 at the end.
//
// The archive is what torch.save writes for a tensor saved from a BytesIO (entries under
// "archive/", stored uncompressed, the data 64-byte aligned): data.pkl rebuilds the tensor with
// torch._utils._rebuild_tensor_v2 from the legacy storage class of its dtype, which torch 1.13
// and 2.x both load. Entries too large for 32-bit zip fields get zip64 extras; the zip64 end
// records are always written, as torch does.
//
// Example: an fp32 [2, 3] tensor: data.pkl of ~150 bytes, data at archive byte 256 (24 bytes),
//   archive size ~ 500 bytes; torch.load of [prefix, data, suffix(crc32 of data)] gives the tensor.
#pragma once

#include <cstdint>
#include <string>

#include "shardalg/core/dims.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/pickle_writer.hpp"
#include "shardalg/storage/zip_archive.hpp"

namespace shardalg {

class TorchArchiveWriter {
 public:
  // Pre: shape's extents are non-negative. `force_zip64` writes zip64 extras even for small
  // entries (tests exercise that path without 4 GiB files).
  TorchArchiveWriter(DType dtype, const Dims& shape, bool force_zip64 = false)
      : data_bytes_(static_cast<std::uint64_t>(checked_mul(volume(shape), element_bytes(dtype)))), force_zip64_(force_zip64) {
    std::string pickle = data_pickle(dtype, shape);
    pickle_crc_ = crc32(std::as_bytes(std::span(pickle.data(), pickle.size())));
    pickle_bytes_ = pickle.size();
    local_header(prefix_, "archive/data.pkl", pickle.size(), pickle_crc_, 0);
    prefix_ += pickle;
    data_header_at_ = prefix_.size();
    local_header(prefix_, "archive/data/0", data_bytes_, 0, alignment);
    data_crc_at_ = data_header_at_ + 14;
  }

  // Bytes [0, data_offset()) of the archive; the data entry's CRC-32 is 0 until patched.
  const std::string& prefix() const { return prefix_; }
  std::uint64_t data_offset() const { return prefix_.size(); }
  std::uint64_t data_bytes() const { return data_bytes_; }
  // Where in the archive the 4 CRC bytes of the data entry's local header are.
  std::uint64_t data_crc_offset() const { return data_crc_at_; }
  // The archive's bytes after the data, given the data's CRC-32.
  std::string suffix(std::uint32_t data_crc) const {
    std::string tail;
    std::uint64_t version_at = data_offset() + data_bytes_;
    local_header(tail, "archive/version", version.size(), version_crc(), 0);
    tail += version;
    std::uint64_t directory_at = version_at + tail.size();
    std::string directory;
    central_header(directory, "archive/data.pkl", pickle_bytes_, pickle_crc_, 0);
    central_header(directory, "archive/data/0", data_bytes_, data_crc, data_header_at_);
    central_header(directory, "archive/version", version.size(), version_crc(), version_at);
    tail += directory;
    std::uint64_t end64_at = directory_at + directory.size();
    // zip64 end of central directory record and locator, then the classic end record.
    le(tail, detail::zip64_end, 4);
    le(tail, 44, 8);  // size of the rest of this record
    le(tail, 45, 2);
    le(tail, 45, 2);
    le(tail, 0, 4);
    le(tail, 0, 4);
    le(tail, 3, 8);
    le(tail, 3, 8);
    le(tail, directory.size(), 8);
    le(tail, directory_at, 8);
    le(tail, detail::zip64_locator, 4);
    le(tail, 0, 4);
    le(tail, end64_at, 8);
    le(tail, 1, 4);
    le(tail, detail::zip_end, 4);
    le(tail, 0, 4);
    le(tail, 3, 2);
    le(tail, 3, 2);
    le(tail, saturate(directory.size()), 4);
    le(tail, saturate(directory_at), 4);
    le(tail, 0, 2);
    return tail;
  }
  // The whole archive's size.
  std::uint64_t size() const { return data_offset() + data_bytes_ + suffix(0).size(); }

 private:
  static constexpr std::uint64_t alignment = 64;
  static constexpr std::string_view version = "3\n";

  static std::string data_pickle(DType dtype, const Dims& shape) {
    PickleWriter p;
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.mark();
    p.mark();
    p.string("storage");
    p.global("torch", detail::format_names(dtype).storage_class);
    p.string("0");
    p.string("cpu");
    p.integer(volume(shape));
    p.tuple(-1);
    p.persistent_id();
    p.integer(0);  // storage offset
    p.mark();
    for (index_t extent : shape) p.integer(extent);
    p.tuple(-1);
    p.mark();
    for (index_t stride : row_major_strides(shape)) p.integer(stride);
    p.tuple(-1);
    p.boolean(false);  // requires_grad
    p.global("collections", "OrderedDict");
    p.tuple(0);
    p.reduce();
    p.tuple(-1);
    p.reduce();
    return p.finish();
  }
  static std::uint32_t version_crc() { return crc32(std::as_bytes(std::span(version.data(), version.size()))); }
  static std::uint64_t saturate(std::uint64_t value) { return value >= 0xffffffffu ? 0xffffffffu : value; }
  bool wide(std::uint64_t value) const { return force_zip64_ || value >= 0xffffffffu; }
  static void le(std::string& out, std::uint64_t value, int width) {
    for (int i = 0; i < width; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
  }
  // A local header whose data starts at a multiple of `align` (0: no padding) within the archive.
  void local_header(std::string& out, std::string_view name, std::uint64_t bytes, std::uint32_t crc, std::uint64_t align) const {
    std::uint64_t extra = wide(bytes) ? 20 : 0;
    std::uint64_t padding = 0;
    if (align) {
      std::uint64_t end = out.size() + 30 + name.size() + extra;
      padding = (align - (end + 4) % align) % align + 4;  // a padding extra field: 4-byte header + filler
    }
    le(out, detail::zip_local_header, 4);
    le(out, wide(bytes) ? 45 : 20, 2);  // version needed
    le(out, 0x0800, 2);                 // UTF-8 names
    le(out, 0, 2);                      // stored
    le(out, 0, 4);                      // time, date
    le(out, crc, 4);
    le(out, wide(bytes) ? 0xffffffffu : bytes, 4);
    le(out, wide(bytes) ? 0xffffffffu : bytes, 4);
    le(out, name.size(), 2);
    le(out, extra + padding, 2);
    out += name;
    if (extra) {
      le(out, 1, 2);
      le(out, 16, 2);
      le(out, bytes, 8);
      le(out, bytes, 8);
    }
    if (padding) {
      le(out, 0x4246, 2);  // "FB", the id torch.save uses for its alignment padding
      le(out, padding - 4, 2);
      out.append(padding - 4, 'Z');
    }
  }
  void central_header(std::string& out, std::string_view name, std::uint64_t bytes, std::uint32_t crc, std::uint64_t local_at) const {
    bool wide_size = wide(bytes), wide_offset = wide(local_at);
    std::uint64_t extra = (wide_size ? 16 : 0) + (wide_offset ? 8 : 0);
    le(out, detail::zip_central_header, 4);
    le(out, 45, 2);  // made by
    le(out, extra ? 45 : 20, 2);
    le(out, 0x0800, 2);
    le(out, 0, 2);
    le(out, 0, 4);
    le(out, crc, 4);
    le(out, wide_size ? 0xffffffffu : bytes, 4);
    le(out, wide_size ? 0xffffffffu : bytes, 4);
    le(out, name.size(), 2);
    le(out, extra ? extra + 4 : 0, 2);
    le(out, 0, 2);  // comment
    le(out, 0, 2);  // disk
    le(out, 0, 2);  // internal attributes
    le(out, 0, 4);  // external attributes
    le(out, wide_offset ? 0xffffffffu : local_at, 4);
    out += name;
    if (extra) {
      le(out, 1, 2);
      le(out, extra, 2);
      if (wide_size) {
        le(out, bytes, 8);
        le(out, bytes, 8);
      }
      if (wide_offset) le(out, local_at, 8);
    }
  }

  std::string prefix_;
  std::uint64_t data_bytes_ = 0, pickle_bytes_ = 0, data_header_at_ = 0, data_crc_at_ = 0;
  std::uint32_t pickle_crc_ = 0;
  bool force_zip64_ = false;
};

}  // namespace shardalg
