// PyTorch Distributed Checkpoint's `.metadata` file, read without executing it.
//
// The file is a pickle of DCP's record types: Metadata{state_dict_metadata: {fqn:
// TensorStorageMetadata{properties: TensorProperties, size: torch.Size, chunks:
// [ChunkStorageMetadata{offsets, sizes}]} | BytesStorageMetadata}, storage_data: {MetadataIndex{fqn,
// offset, index}: _StorageInfo{relative_path, offset, length}}}. torch 1.13 keeps them under
// torch.distributed._shard.checkpoint (TensorProperties under ._shard.sharded_tensor), torch 2.x
// under torch.distributed.checkpoint; both are accepted, fields the readers do not use are
// ignored, and any other class is refused by name (dcp_records.hpp, pickle_reader.hpp).
//
// Two readers: files as torch writes them are read in one pass (dcp_one_pass_reader.hpp); the
// document reader here reads every file, the others and any with an error, keeping every value
// of the pickle (pickle_reader.hpp) and then decoding its records.
//
// Example (torch 1.13, a 5x3 fp32 ShardedTensor on 2 ranks, dim 0): tensor "w" fp32 [5, 3] with
// chunks ([0,0], [3,3]) in "__0_0.distcp" and ([3,0], [2,3]) in "__1_0.distcp".
#pragma once

#include <array>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shardalg/core/page_populator.hpp"
#include "shardalg/storage/checkpoint_layout.hpp"
#include "shardalg/storage/dcp_one_pass_reader.hpp"
#include "shardalg/storage/dcp_records.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/pickle_reader.hpp"

namespace shardalg {

namespace detail {

// Reads DCP's records out of a pickle document.
class DcpDecoder {
 public:
  using Ref = PickleDocument::Ref;
  explicit DcpDecoder(const PickleDocument& doc) : doc_(doc) {}

  // Fields of a dataclass object, found in one pass over its BUILD state: the instance dict (or,
  // for slotted classes, a (dict, slots) pair). Absent fields are none. `known`: as for
  // PickleDocument::find, one per list of names.
  template <std::size_t N>
  std::array<std::optional<Ref>, N> fields(Ref object, const std::array<std::string_view, N>& names, std::array<Ref, N>* known = nullptr) const {
    std::array<std::optional<Ref>, N> found{};
    Ref state = doc_.object(object).state;
    if (doc_.is(state, PickleDocument::Kind::dict)) doc_.find(state, names, found, known);
    if (doc_.is(state, PickleDocument::Kind::tuple) && doc_.size(state) == 2)
      for (std::size_t i = 0; i < 2; ++i)
        if (doc_.is(doc_.item(state, i), PickleDocument::Kind::dict)) doc_.find(doc_.item(state, i), names, found, known);
    return found;
  }
  // A field that must be present: the error names it and the `record` type.
  Ref present(const std::optional<Ref>& value, std::string_view name, std::string_view record) const {
    if (!value) fail<FormatError>(doc_.what(), ": a DCP ", record, " has no field '", name, "'");
    return *value;
  }
  // Fields that must all be present.
  template <std::size_t N>
  std::array<Ref, N> required(Ref object, const std::array<std::string_view, N>& names, std::string_view record,
                              std::array<Ref, N>* known = nullptr) const {
    std::array<std::optional<Ref>, N> found = fields(object, names, known);
    std::array<Ref, N> values{};
    for (std::size_t i = 0; i < N; ++i) values[i] = present(found[i], names[i], record);
    return values;
  }
  // torch.Size(tuple) -> its extents. `what` and `name` say which (for errors only).
  Dims size(Ref r, std::string_view what, std::string_view name) const {
    Dims dims;
    size_into(dims, r, what, name);
    return dims;
  }
  // The same into `dims` (empty before): no temporary to move where the extents are kept.
  void size_into(Dims& dims, Ref r, std::string_view what, std::string_view name) const {
    if (!doc_.is_object_of(r, "Size")) fail<FormatError>(doc_.what(), ": ", what, name, "' is not a torch.Size");
    Ref args = doc_.object(r).args;
    if (doc_.size(args) == 0) return;
    Ref values = doc_.item(args, 0);
    if (doc_.size(values) > 64) fail<FormatError>(doc_.what(), ": ", what, name, "' has ", doc_.size(values), " dims");
    doc_.for_each(values, [&](Ref v) {
      std::int64_t extent = doc_.integer(v);
      if (extent < 0) fail<FormatError>(doc_.what(), ": ", what, name, "' has a negative extent ", extent);
      dims.push_back(extent);
    });
  }
  // TensorProperties: state is (dtype, layout, requires_grad, memory_format, pin_memory) in torch
  // 1.13 and 2.x, or the instance dict.
  DType dtype(Ref properties, std::string_view tensor) const {
    Ref state = doc_.object(properties).state;
    std::optional<Ref> dtype;
    if (doc_.is(state, PickleDocument::Kind::tuple) && doc_.size(state) > 0)
      dtype = doc_.item(state, 0);
    else if (doc_.is(state, PickleDocument::Kind::dict))
      dtype = doc_.find(state, "dtype");
    if (!dtype || !doc_.is(*dtype, PickleDocument::Kind::global) || doc_.global(*dtype).module != "torch")
      fail<FormatError>(doc_.what(), ": tensor '", tensor, "' has no torch dtype in its properties");
    try {
      return dtype_from_torch(doc_.global(*dtype).name);
    } catch (const FormatError& e) {
      fail<FormatError>(doc_.what(), ": tensor '", tensor, "': ", e.what());
    }
  }
  std::string_view string(Ref r) const { return doc_.string(r); }
  std::int64_t integer(Ref r) const { return doc_.integer(r); }
  const PickleDocument& doc() const { return doc_; }

 private:
  const PickleDocument& doc_;
};

}  // namespace detail

namespace detail {

// read_dcp_metadata with the document reader: every file, and every error stated.
inline CheckpointLayout read_dcp_metadata_document(std::string_view data, const std::string& what) {
  using detail::fail;
  PickleDocument doc(data, detail::dcp_metadata_globals, what);
  detail::DcpDecoder dcp(doc);
  using Ref = PickleDocument::Ref;
  Ref root = doc.root();
  if (!doc.is_object_of(root, "Metadata")) doc.bad(root, "a DCP Metadata record");

  CheckpointLayout layout;
  layout.format = CheckpointFormat::dcp;
  layout.dcp_flavor = doc.global(doc.object(root).callable).module == detail::dcp_v1 ? DcpFlavor::torch_1_13 : DcpFlavor::torch_2;
  // (Not a structured binding: lambdas below capture these, which clang 14 refuses for bindings.)
  const std::array<Ref, 2> metadata_fields = dcp.required(root, std::array<std::string_view, 2>{"state_dict_metadata", "storage_data"}, "Metadata");
  const Ref state_dict_metadata = metadata_fields[0], storage = metadata_fields[1];

  // First, in one quick pass: the names of the tensors and entries, and every tensor's chunk
  // vector reserved, its pages then mapped on another core while the records are decoded into it
  // (250 MB of chunks for 405B at 1,024 ranks). Malformed records are only skipped here: the
  // decoding reports them.
  std::unordered_map<std::string_view, std::size_t> tensor_of, entry_of;
  std::vector<std::vector<StoredChunk>> chunk_vectors;
  std::vector<PagePopulator::Range> chunk_pages;
  doc.for_each(state_dict_metadata, [&, is_key = true, key = std::optional<std::string_view>()](Ref item) mutable {
    if (is_key) {
      key = doc.is(item, PickleDocument::Kind::string) ? std::optional(doc.string(item)) : std::nullopt;
      is_key = false;
      return;
    }
    is_key = true;
    if (key && doc.is_object_of(item, "BytesStorageMetadata")) {
      entry_of.emplace(*key, layout.entries.size());
      layout.entries.push_back(StoredEntry{std::string(*key)});
    } else if (key && doc.is_object_of(item, "TensorStorageMetadata")) {
      tensor_of.emplace(*key, chunk_vectors.size());
      std::vector<StoredChunk>& chunks = chunk_vectors.emplace_back();
      if (auto [list] = dcp.fields(item, std::array<std::string_view, 1>{"chunks"}); list && doc.is(*list, PickleDocument::Kind::list)) {
        chunks.reserve(doc.size(*list));
        chunk_pages.push_back({chunks.data(), chunks.capacity() * sizeof(StoredChunk)});
      }
    }
  });

  // storage_data: which file and byte range holds each chunk and entry. Each item's place is read
  // first (on another thread where there are many, below), then matched to its chunk.
  std::vector<detail::DcpStoragePlace> places;
  auto read_storage = [&] {
    if (doc.is(storage, PickleDocument::Kind::none)) return;
    places.reserve(doc.size(storage) / 2);
    detail::DcpFiles files(layout.files);
    // Consecutive items usually name one tensor (torch writes the name again for each): looked up once.
    std::optional<std::string_view> last_fqn;
    std::size_t last_tensor = 0;
    std::unordered_map<Ref, std::uint32_t> file_of_name;  // by the name's node: most items share their file's name
    std::array<Ref, 3> index_keys{};
    std::array<Ref, 4> info_keys{};
    doc.for_each(storage, [&, is_key = true, index = Ref()](Ref item) mutable {
      if (is_key) {
        index = item;
        is_key = false;
        return;
      }
      is_key = true;
      if (!doc.is_object_of(index, "MetadataIndex")) doc.bad(index, "MetadataIndex");
      if (!doc.is_object_of(item, "_StorageInfo")) doc.bad(item, "_StorageInfo");
      auto [fqn_ref, offset_ref, hint] = dcp.fields(index, std::array<std::string_view, 3>{"fqn", "offset", "index"}, &index_keys);
      std::string_view fqn = doc.string(dcp.present(fqn_ref, "fqn", "MetadataIndex"));
      auto [path_ref, offset_value, length_value, transforms] =
          dcp.fields(item, std::array<std::string_view, 4>{"relative_path", "offset", "length", "transform_descriptors"}, &info_keys);
      if (transforms && !doc.is(*transforms, PickleDocument::Kind::none) && doc.size(*transforms) > 0)
        fail<FormatError>(what, ": '", fqn, "' is stored with transforms (compression or encryption), which are not supported");
      Ref name = dcp.present(path_ref, "relative_path", "_StorageInfo");
      std::uint32_t file = 0;
      if (auto known = file_of_name.find(name); known != file_of_name.end()) {
        file = known->second;
      } else {
        file = files.index_of(what, fqn, doc.string(name));
        file_of_name.emplace(name, file);
      }
      std::uint64_t offset = detail::non_negative(dcp.integer(dcp.present(offset_value, "offset", "_StorageInfo")), what, fqn);
      std::uint64_t length = detail::non_negative(dcp.integer(dcp.present(length_value, "length", "_StorageInfo")), what, fqn);
      if (last_fqn != fqn) {
        if (auto e = entry_of.find(fqn); e != entry_of.end()) {
          layout.entries[e->second].file = file;
          layout.entries[e->second].offset = offset;
          layout.entries[e->second].bytes = length;
          return;
        }
        auto t = tensor_of.find(fqn);
        if (t == tensor_of.end()) fail<FormatError>(what, ": storage info for '", fqn, "', which the metadata does not list");
        last_fqn = fqn;
        last_tensor = t->second;
      }
      detail::DcpStoragePlace& place = places.emplace_back(detail::DcpStoragePlace{last_tensor, std::nullopt, std::nullopt, file, offset, length});
      if (hint && doc.is(*hint, PickleDocument::Kind::integer)) place.hint = doc.integer(*hint);
      if (offset_ref && !doc.is(*offset_ref, PickleDocument::Kind::none)) place.offset_record = *offset_ref;
    });
  };
  std::exception_ptr storage_error;
  auto read_storage_noting_error = [&] {
    try {
      read_storage();
    } catch (...) {
      storage_error = std::current_exception();
    }
  };
  // A large storage_data is read on a thread of its own while this one decodes the tensors; a small
  // one (or where no thread can start) after them.
  constexpr std::size_t items_for_a_thread = 4096;
  std::jthread storage_reader;  // declared after all it uses: joined before they are released
  if (doc.is(storage, PickleDocument::Kind::dict) && doc.size(storage) >= 2 * items_for_a_thread) {
    try {
      storage_reader = std::jthread(read_storage_noting_error);
    } catch (const std::system_error&) {  // no thread to spare: read after the tensors
    }
  }

  std::array<Ref, 2> chunk_keys{};
  std::vector<std::vector<std::uint32_t>> chunk_offset_records(chunk_vectors.size());  // each chunk's offsets, as recorded
  PagePopulator populator;  // after the vectors it populates: stops before they are released
  populator.start(std::move(chunk_pages), PagePopulator::whole_ranges);
  doc.for_each(state_dict_metadata, [&, is_key = true, key = std::string_view()](Ref item) mutable {
    if (is_key) {
      key = doc.string(item);
      is_key = false;
      return;
    }
    is_key = true;
    if (doc.is_object_of(item, "BytesStorageMetadata")) return;  // listed above
    if (!doc.is_object_of(item, "TensorStorageMetadata")) doc.bad(item, "TensorStorageMetadata or BytesStorageMetadata");
    auto [properties, size, chunks] = dcp.required(item, std::array<std::string_view, 3>{"properties", "size", "chunks"}, "TensorStorageMetadata");
    StoredTensor tensor{std::string(key), dcp.dtype(properties, key), dcp.size(size, "the size of '", key), std::move(chunk_vectors[layout.tensors.size()])};
    tensor.chunks.reserve(doc.size(chunks));
    std::vector<std::uint32_t>& offset_records = chunk_offset_records[layout.tensors.size()];
    offset_records.reserve(doc.size(chunks));
    doc.for_each(chunks, [&](Ref chunk) {
      if (!doc.is_object_of(chunk, "ChunkStorageMetadata")) doc.bad(chunk, "ChunkStorageMetadata");
      auto [offsets, sizes] = dcp.required(chunk, std::array<std::string_view, 2>{"offsets", "sizes"}, "ChunkStorageMetadata", &chunk_keys);
      offset_records.push_back(offsets);
      StoredChunk& c = tensor.chunks.emplace_back();
      dcp.size_into(c.box.offsets, offsets, "a chunk offset of '", tensor.name);
      dcp.size_into(c.box.sizes, sizes, "a chunk size of '", tensor.name);
    });
    layout.tensors.push_back(std::move(tensor));
  });
  if (storage_reader.joinable())
    storage_reader.join();
  else
    read_storage_noting_error();
  if (storage_error) std::rethrow_exception(storage_error);

  detail::DcpChunkPlacer placer(layout, chunk_offset_records, what);
  for (const detail::DcpStoragePlace& place : places)
    placer.place(place, [&](Ref record, Dims& offsets, std::string_view tensor) { dcp.size_into(offsets, record, "a storage index offset of '", tensor); });
  return layout;
}

}  // namespace detail

// The checkpoint layout recorded by a DCP `.metadata` pickle (`data`, from `what`). Chunks with no
// storage info keep file == no_file (verify reports them). Errors (FormatError): a malformed or
// refused pickle, records of the wrong shape, storage info for an unknown tensor or chunk.
//
// Files as torch writes them are read in one pass (dcp_one_pass_reader.hpp); any other file, and
// every error, by the document reader.
inline CheckpointLayout read_dcp_metadata(std::string_view data, const std::string& what) {
  if (std::optional<CheckpointLayout> layout = detail::DcpOnePassReader::read(data, what)) return std::move(*layout);
  return detail::read_dcp_metadata_document(data, what);
}

}  // namespace shardalg
