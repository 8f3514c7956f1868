// Where the elements of a tensor saved by torch.save are, without loading it.
//
// torch.save writes a zip archive (zip_archive.hpp): `<prefix>/data.pkl` pickles
// torch._utils._rebuild_tensor_v2(persistent_id(('storage', torch.<T>Storage, key, location,
// numel)), storage_offset, size, stride, requires_grad, hooks), and `<prefix>/data/<key>` holds
// the storage's raw bytes. The pickle is read by the restricted reader (only those globals) and
// every number is checked against the archive: the storage entry holds numel elements and the
// view (offset, sizes, strides) lies inside it.
//
// Example: torch.save(torch.arange(9.).reshape(3, 3)) -> fp32, shape [3, 3], strides [3, 1],
// elements at the data/0 entry's offset, 36 bytes.
#pragma once

#include <string>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/dims.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/pickle_reader.hpp"
#include "shardalg/storage/zip_archive.hpp"

namespace shardalg {

struct SavedTensorData {
  DType dtype = DType::fp32;
  Dims shape;
  Dims strides;                    // in elements
  std::uint64_t byte_offset = 0;   // of element [0, ..., 0] in the source
  std::uint64_t storage_offset = 0, storage_bytes = 0;  // the storage entry's bytes in the source
  std::uint32_t crc32 = 0;         // the storage entry's recorded CRC-32
};

namespace detail {

inline constexpr PickleGlobal torch_save_globals[] = {
    {"torch._utils", "_rebuild_tensor_v2"}, {"collections", "OrderedDict"},
    {"torch", "DoubleStorage"}, {"torch", "FloatStorage"}, {"torch", "HalfStorage"}, {"torch", "BFloat16Storage"},
    {"torch", "LongStorage"}, {"torch", "IntStorage"}, {"torch", "ShortStorage"}, {"torch", "CharStorage"},
    {"torch", "ByteStorage"}, {"torch", "BoolStorage"}, {"torch", "ComplexFloatStorage"}, {"torch", "ComplexDoubleStorage"},
    {"torch", "Float8_e4m3fnStorage"}, {"torch", "Float8_e5m2Storage"},
};

}  // namespace detail

// The tensor torch.save wrote at [offset, offset + length) of `source`.
// Errors (FormatError naming the source): see read_zip_directory; no single data.pkl, a refused
// or malformed pickle, a storage entry missing or of the wrong size, a view outside its storage.
inline SavedTensorData read_saved_tensor(const ByteSource& source, std::uint64_t offset, std::uint64_t length) {
  using detail::fail;
  const std::string& what = source.name();
  std::vector<ZipEntry> entries = read_zip_directory(source, offset, length);
  const ZipEntry* pickle_entry = nullptr;
  for (const ZipEntry& e : entries)
    if (e.name.ends_with("/data.pkl") || e.name == "data.pkl") {
      if (pickle_entry) fail<FormatError>(what, ": torch.save archive at byte ", offset, " has two data.pkl entries");
      pickle_entry = &e;
    }
  if (!pickle_entry) fail<FormatError>(what, ": the archive at byte ", offset, " has no data.pkl: not a torch.save archive");
  if (pickle_entry->size > (1u << 20)) fail<FormatError>(what, ": data.pkl of ", pickle_entry->size, " bytes is too large for one tensor's record");
  std::string prefix = pickle_entry->name.substr(0, pickle_entry->name.size() - std::string_view("data.pkl").size());
  std::vector<std::byte> pickle_bytes = source.read(pickle_entry->data_offset, pickle_entry->size);
  std::string pickle_what = what + " (torch.save archive at byte " + std::to_string(offset) + ")";
  PickleDocument doc(std::string_view(reinterpret_cast<const char*>(pickle_bytes.data()), pickle_bytes.size()), detail::torch_save_globals, pickle_what);
  using Ref = PickleDocument::Ref;
  Ref root = doc.root();
  if (!doc.is_object_of(root, "_rebuild_tensor_v2")) doc.bad(root, "a tensor (torch._utils._rebuild_tensor_v2)");
  Ref args = doc.object(root).args;
  if (doc.size(args) < 4) fail<FormatError>(pickle_what, ": _rebuild_tensor_v2 with ", doc.size(args), " arguments");
  Ref pid = doc.persistent_id(doc.item(args, 0));
  if (!doc.is(pid, PickleDocument::Kind::tuple) || doc.size(pid) != 5 || doc.string(doc.item(pid, 0)) != "storage")
    fail<FormatError>(pickle_what, ": the tensor's storage is not a ('storage', type, key, location, numel) record");
  SavedTensorData data;
  data.dtype = dtype_from_storage_class(doc.global(doc.item(pid, 1)).name);
  std::string key(doc.string(doc.item(pid, 2)));
  std::int64_t numel = doc.integer(doc.item(pid, 4)), storage_offset = doc.integer(doc.item(args, 1));
  Ref size = doc.item(args, 2), stride = doc.item(args, 3);
  if (doc.size(size) != doc.size(stride) || doc.size(size) > 64) fail<FormatError>(pickle_what, ": the tensor has ", doc.size(size), " sizes and ", doc.size(stride), " strides");
  doc.for_each(size, [&](Ref v) { data.shape.push_back(doc.integer(v)); });
  doc.for_each(stride, [&](Ref v) { data.strides.push_back(doc.integer(v)); });
  const ZipEntry* storage = nullptr;
  for (const ZipEntry& e : entries)
    if (e.name == prefix + "data/" + key) storage = &e;
  if (!storage) fail<FormatError>(pickle_what, ": no entry '", prefix, "data/", key, "' for the tensor's storage");
  index_t bytes_per = element_bytes(data.dtype);
  if (numel < 0 || storage_offset < 0 || static_cast<std::uint64_t>(numel) > storage->size / static_cast<std::uint64_t>(bytes_per) ||
      storage->size != static_cast<std::uint64_t>(numel) * static_cast<std::uint64_t>(bytes_per))
    fail<FormatError>(pickle_what, ": storage '", key, "' of ", numel, " ", to_string(data.dtype), " elements does not match its entry of ", storage->size, " bytes");
  // The view's last element must lie inside the storage.
  index_t last = storage_offset;
  bool empty = false;
  for (std::size_t d = 0; d < data.shape.size(); ++d) {
    if (data.shape[d] < 0 || data.strides[d] < 0) fail<FormatError>(pickle_what, ": negative size or stride (", data.shape, ", ", data.strides, ")");
    empty = empty || data.shape[d] == 0;
    if (data.shape[d] > 0) last = checked_add(last, checked_mul(data.shape[d] - 1, data.strides[d]));
  }
  if (!empty && last >= numel)
    fail<FormatError>(pickle_what, ": the view (offset ", storage_offset, ", sizes ", data.shape, ", strides ", data.strides, ") reaches past its storage of ", numel, " elements");
  data.byte_offset = storage->data_offset + static_cast<std::uint64_t>(storage_offset) * static_cast<std::uint64_t>(bytes_per);
  data.storage_offset = storage->data_offset;
  data.storage_bytes = storage->size;
  data.crc32 = storage->crc32;
  return data;
}

}  // namespace shardalg
