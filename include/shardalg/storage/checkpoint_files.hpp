// A checkpoint folder opened for reading: its layout (from DCP's `.metadata` or the safetensors
// headers), its files (opened on first use), where each chunk's elements are, and reads of any
// box of a chunk straight into strided memory.
//
// Formats are recognised by their files: `.metadata` is DCP; `model.safetensors.index.json` is
// Hugging Face's sharded safetensors; otherwise every `*.safetensors` file of the folder, each
// holding whole tensors.
//
// Example:
//   Checkpoint ck = Checkpoint::open("ck");           // DCP saved by torch at 2 ranks
//   const ChunkData& d = ck.data(0, 1);                // tensor 0, chunk 1: byte offset, strides
//   std::vector<float> rows(6);
//   ck.read_box(0, 1, {0, 0}, {2, 3}, reinterpret_cast<std::byte*>(rows.data()), {3, 1});
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "shardalg/storage/dcp_metadata.hpp"
#include "shardalg/storage/safetensors.hpp"
#include "shardalg/storage/torch_saved_tensor.hpp"

namespace shardalg {

// Where a saved chunk's elements are in its file.
struct ChunkData {
  std::uint64_t byte_offset = 0;  // element [0, ..., 0] of the chunk
  Dims strides;                   // in elements, per dim of the chunk
  // The bytes a checksum covers, and the checksum (DCP: the storage entry's CRC-32).
  std::uint64_t checked_offset = 0, checked_bytes = 0;
  std::optional<std::uint32_t> crc32;
};

class Checkpoint {
 public:
  // Errors (FormatError): no such folder, no checkpoint files in it, unreadable metadata.
  static Checkpoint open(const std::filesystem::path& folder, std::uint64_t max_metadata_bytes = std::uint64_t{1} << 34) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) detail::fail<FormatError>("checkpoint folder '", folder.string(), "' does not exist or is not a folder");
    Checkpoint ck(folder);
    if (fs::exists(folder / ".metadata")) {
      std::string path = (folder / ".metadata").string();
      InputFile file(path);
      if (file.size() > max_metadata_bytes) detail::fail<FormatError>(file.name(), ": ", file.size(), " bytes of metadata (at most ", max_metadata_bytes, ")");
      MappedFile metadata(file, path);
      ck.layout_ = read_dcp_metadata(metadata.view(), file.name());
    } else {
      ck.open_safetensors();
    }
    ck.files_.resize(ck.layout_.files.size());
    ck.file_once_ = std::make_unique<std::once_flag[]>(ck.layout_.files.size());
    return ck;
  }

  const CheckpointLayout& layout() const { return layout_; }
  const std::filesystem::path& folder() const { return folder_; }

  // File `f` of the layout, opened on first use. Error naming the file if it is missing.
  const InputFile& file(std::uint32_t f) const {
    if (f >= files_.size()) detail::fail<FormatError>("checkpoint '", folder_.string(), "': no file recorded (index ", f, ")");
    std::call_once(file_once_[f], [&] { files_[f] = std::make_unique<InputFile>((folder_ / layout_.files[f]).string()); });
    return *files_[f];
  }

  // Where chunk `c` of tensor `t` is. DCP reads the archive's directory and data.pkl once (then
  // cached) and checks them against the metadata. Thread-safe.
  // Errors (FormatError naming tensor, chunk and file): see read_saved_tensor; no storage info;
  // a saved tensor whose dtype or shape differs from the metadata's chunk.
  ChunkData data(std::size_t t, std::size_t c) const {
    const StoredTensor& tensor = layout_.tensors[t];
    const StoredChunk& chunk = tensor.chunks[c];
    auto where = [&] { return detail::concat("tensor '", tensor.name, "' chunk ", c, " (offsets ", chunk.box.offsets, ")"); };
    if (chunk.file == no_file) detail::fail<FormatError>(where(), ": the metadata records no file for it");
    if (layout_.format == CheckpointFormat::safetensors) {
      ChunkData d{chunk.item_offset, row_major_strides(chunk.box.sizes), chunk.item_offset, chunk.item_bytes, std::nullopt};
      return d;
    }
    std::uint64_t key = (static_cast<std::uint64_t>(t) << 32) | c;
    {
      std::lock_guard lock(cache_->mutex);
      if (auto it = cache_->located.find(key); it != cache_->located.end()) return it->second;
    }
    SavedTensorData saved;
    try {
      saved = read_saved_tensor(file(chunk.file), chunk.item_offset, chunk.item_bytes);
    } catch (const FormatError& e) {
      detail::fail<FormatError>(where(), ": ", e.what());
    }
    if (saved.dtype != tensor.dtype || saved.shape != chunk.box.sizes)
      detail::fail<FormatError>(where(), " in file '", layout_.files[chunk.file], "': the archive holds ", saved.dtype, " ", saved.shape, "; the metadata says ",
                                tensor.dtype, " ", chunk.box.sizes);
    ChunkData d{saved.byte_offset, saved.strides, saved.storage_offset, saved.storage_bytes, saved.crc32};
    std::lock_guard lock(cache_->mutex);
    return cache_->located.emplace(key, std::move(d)).first->second;
  }

  // The bytes of a non-tensor entry.
  std::vector<std::byte> read_entry(std::size_t e) const {
    const StoredEntry& entry = layout_.entries[e];
    if (entry.file == no_file) detail::fail<FormatError>("entry '", entry.name, "': the metadata records no file for it");
    return file(entry.file).read(entry.offset, entry.bytes);
  }

  // Copies the box [storage_offsets, storage_offsets + lengths) of chunk `c` of tensor `t` to
  // `dest`, element (i0, i1, ...) of the box going to dest + sum(ik * dest_strides[k]) elements.
  // Contiguous runs are read straight into dest; strided ones through `bounce` (at most
  // `bounce_limit` bytes, reused across calls), never element by element from the file.
  // Pre: the box lies inside the chunk (checked; error otherwise).
  void read_box(std::size_t t, std::size_t c, const Dims& storage_offsets, const Dims& lengths, std::byte* dest, const Dims& dest_strides,
                std::vector<std::byte>* bounce = nullptr, std::uint64_t bounce_limit = std::uint64_t{16} << 20) const {
    const StoredTensor& tensor = layout_.tensors[t];
    const StoredChunk& chunk = tensor.chunks[c];
    std::size_t n = chunk.box.sizes.size();
    if (storage_offsets.size() != n || lengths.size() != n || dest_strides.size() != n)
      detail::fail("read of tensor '", tensor.name, "' chunk ", c, ": box of ", lengths.size(), " dims for a chunk of ", n);
    for (std::size_t d = 0; d < n; ++d)
      if (storage_offsets[d] < 0 || lengths[d] < 0 || storage_offsets[d] + lengths[d] > chunk.box.sizes[d])
        detail::fail("read of tensor '", tensor.name, "' chunk ", c, ": box ", storage_offsets, " + ", lengths, " is outside the chunk ", chunk.box.sizes);
    if (volume(lengths) == 0) return;
    ChunkData data = this->data(t, c);
    const InputFile& source = file(chunk.file);
    std::uint64_t elt = static_cast<std::uint64_t>(element_bytes(tensor.dtype));
    // Dims of the box (outer to inner) with their byte strides, length-1 dims dropped, mergeable ones merged.
    struct Dim {
      std::uint64_t length, src, dst;
    };
    std::vector<Dim> dims;
    std::uint64_t start = data.byte_offset;
    for (std::size_t d = 0; d < n; ++d) {
      start += static_cast<std::uint64_t>(storage_offsets[d] * data.strides[d]) * elt;
      if (lengths[d] != 1) dims.push_back(Dim{static_cast<std::uint64_t>(lengths[d]), static_cast<std::uint64_t>(data.strides[d]) * elt, static_cast<std::uint64_t>(dest_strides[d]) * elt});
    }
    std::uint64_t run = elt;  // bytes contiguous on both sides
    while (!dims.empty() && dims.back().src == run && dims.back().dst == run) {
      run *= dims.back().length;
      dims.pop_back();
    }
    // Rows: every index of the remaining dims, in order; read in bands that fit the bounce buffer.
    std::uint64_t rows = 1;
    for (const Dim& dim : dims) rows *= dim.length;
    std::vector<std::byte> local;
    std::vector<std::byte>& buffer = bounce ? *bounce : local;
    std::vector<std::uint64_t> index(dims.size(), 0);
    std::uint64_t row = 0;
    auto offsets_of = [&](std::uint64_t& src, std::uint64_t& dst) {
      src = start;
      dst = 0;
      for (std::size_t k = 0; k < dims.size(); ++k) {
        src += index[k] * dims[k].src;
        dst += index[k] * dims[k].dst;
      }
    };
    auto advance = [&] {
      for (std::size_t k = dims.size(); k-- > 0;) {
        if (++index[k] < dims[k].length) return;
        index[k] = 0;
      }
    };
    while (row < rows) {
      // A band: rows from `row` while their span stays within the limit (at least one row).
      std::vector<std::pair<std::uint64_t, std::uint64_t>> band;  // (src, dst) per row
      std::uint64_t lo = ~std::uint64_t{0}, hi = 0;
      while (row < rows) {
        std::uint64_t src = 0, dst = 0;
        offsets_of(src, dst);
        std::uint64_t new_lo = std::min(lo, src), new_hi = std::max(hi, src + run);
        if (!band.empty() && new_hi - new_lo > bounce_limit) break;
        lo = new_lo;
        hi = new_hi;
        band.emplace_back(src, dst);
        advance();
        ++row;
      }
      std::uint64_t useful = band.size() * run;
      if (band.size() == 1 || useful * 2 < hi - lo) {  // one row, or sparse rows: straight into dest
        for (auto [src, dst] : band) source.read(src, std::span(dest + dst, static_cast<std::size_t>(run)));
        continue;
      }
      buffer.resize(static_cast<std::size_t>(hi - lo));
      source.read(lo, std::span(buffer.data(), buffer.size()));
      for (auto [src, dst] : band) std::memcpy(dest + dst, buffer.data() + (src - lo), static_cast<std::size_t>(run));
    }
  }

 private:
  explicit Checkpoint(std::filesystem::path folder) : folder_(std::move(folder)) {}

  void open_safetensors() {
    namespace fs = std::filesystem;
    layout_.format = CheckpointFormat::safetensors;
    std::map<std::string, std::string> weight_map;  // tensor -> file, from the index when there is one
    fs::path index = folder_ / "model.safetensors.index.json";
    std::vector<std::string> names;
    if (fs::exists(index)) {
      InputFile file(index.string());
      if (file.size() > safetensors_max_header) detail::fail<FormatError>(file.name(), ": ", file.size(), " bytes is too large for an index");
      std::vector<std::byte> bytes = file.read(0, file.size());
      nlohmann::json json = parse_untrusted_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), file.name());
      if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object())
        detail::fail<FormatError>(file.name(), ": expected an object with a \"weight_map\" object");
      for (auto& [tensor, name] : json["weight_map"].items()) {
        if (!name.is_string()) detail::fail<FormatError>(file.name(), ": weight_map entry '", tensor, "' is not a file name");
        std::string path = name.get<std::string>();
        if (path.empty() || path.find('/') != std::string::npos || path == "..")
          detail::fail<FormatError>(file.name(), ": weight_map entry '", tensor, "' names '", path, "', not a file of the folder");
        weight_map[tensor] = path;
        if (std::find(names.begin(), names.end(), path) == names.end()) names.push_back(path);
      }
    } else {
      for (const auto& entry : fs::directory_iterator(folder_))
        if (entry.path().extension() == ".safetensors") names.push_back(entry.path().filename().string());
      std::sort(names.begin(), names.end());
    }
    if (names.empty())
      detail::fail<FormatError>("checkpoint folder '", folder_.string(), "' holds no checkpoint: neither a DCP .metadata nor safetensors files");
    std::map<std::string, std::string> file_of;
    std::map<std::string, std::size_t> tensor_of;
    std::vector<bool> sharded;  // per tensor: its chunks come from files with DCP_SHARDING_INFO
    for (const std::string& name : names) {
      InputFile file((folder_ / name).string());
      SafetensorsHeader header = read_safetensors_header(file);
      std::optional<std::map<std::string, Dims>> sharding = safetensors_saved_offsets(header, file.name());
      std::uint32_t f = static_cast<std::uint32_t>(layout_.files.size());
      layout_.files.push_back(name);
      for (SafetensorsTensor& t : header.tensors) {
        Dims offset = sharding ? sharding->at(t.name) : Dims(t.shape.size(), 0);
        auto [at, added] = tensor_of.emplace(t.name, layout_.tensors.size());
        if (added) {
          layout_.tensors.push_back(StoredTensor{t.name, t.dtype, Dims(t.shape.size(), 0), {}});
          sharded.push_back(sharding.has_value());
        } else if (!sharding || !sharded[at->second]) {
          detail::fail<FormatError>("checkpoint '", folder_.string(), "': tensor '", t.name, "' is in both '", file_of[t.name], "' and '", name,
                                    "' (only sharded files, with ", dcp_sharding_info_key, ", may each hold a part)");
        }
        StoredTensor& tensor = layout_.tensors[at->second];
        if (tensor.dtype != t.dtype || tensor.shape.size() != t.shape.size())
          detail::fail<FormatError>(file.name(), ": tensor '", t.name, "' is ", t.dtype, " ", t.shape, " here but ", tensor.dtype, " with ",
                                    tensor.shape.size(), " dims in '", file_of[t.name], "'");
        file_of.emplace(t.name, name);
        if (!weight_map.empty() && weight_map.count(t.name) && weight_map[t.name] != name)
          detail::fail<FormatError>("checkpoint '", folder_.string(), "': tensor '", t.name, "' is in '", name, "' but the index says '", weight_map[t.name], "'");
        // The global shape of a sharded tensor is where its furthest part ends, as torch reads it.
        for (std::size_t d = 0; d < t.shape.size(); ++d) tensor.shape[d] = std::max(tensor.shape[d], checked_add(offset[d], t.shape[d]));
        tensor.chunks.push_back(StoredChunk{ChunkMeta{std::move(offset), t.shape}, f, t.byte_offset, t.bytes});
      }
    }
    for (const auto& [tensor, name] : weight_map)
      if (!file_of.count(tensor)) detail::fail<FormatError>("checkpoint '", folder_.string(), "': the index lists tensor '", tensor, "' in '", name, "', which does not hold it");
  }

  std::filesystem::path folder_;
  CheckpointLayout layout_;
  mutable std::vector<std::unique_ptr<InputFile>> files_;
  mutable std::unique_ptr<std::once_flag[]> file_once_;
  struct Located {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, ChunkData> located;  // (tensor << 32 | chunk) -> data
  };
  std::unique_ptr<Located> cache_ = std::make_unique<Located>();
};

}  // namespace shardalg
