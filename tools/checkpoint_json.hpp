// A checkpoint's inspection as JSON: what `shardalg checkpoint inspect --json` prints and
// Python's Checkpoint.inspect() returns.
//   {"format": "dcp"|"safetensors", "tensors": [{"name", "dtype", "shape", "chunks": [{"offset",
//    "shape", "file", "byte_offset", "bytes"[, "strides"]}]}], "entries": [{"name", "file",
//    "byte_offset", "bytes"}], "bytes": total tensor bytes}
// A chunk's byte_offset and bytes are its raw elements' place in the file (row-major and
// contiguous unless "strides", in elements, says otherwise).
#pragma once

#include <nlohmann/json.hpp>

#include "shardalg/storage/checkpoint_files.hpp"

namespace shardalg::cli {

inline nlohmann::ordered_json checkpoint_inspection(const Checkpoint& ck) {
  using json = nlohmann::ordered_json;
  const CheckpointLayout& layout = ck.layout();
  auto dims = [](const Dims& d) { return json(std::vector<index_t>(d.begin(), d.end())); };
  json tensors = json::array(), entries = json::array();
  for (std::size_t t = 0; t < layout.tensors.size(); ++t) {
    const StoredTensor& tensor = layout.tensors[t];
    json chunks = json::array();
    for (std::size_t c = 0; c < tensor.chunks.size(); ++c) {
      const StoredChunk& chunk = tensor.chunks[c];
      ChunkData data = ck.data(t, c);
      json out{{"offset", dims(chunk.box.offsets)}, {"shape", dims(chunk.box.sizes)}, {"file", layout.files[chunk.file]},
               {"byte_offset", data.byte_offset}, {"bytes", volume(chunk.box.sizes) * element_bytes(tensor.dtype)}};
      if (data.strides != row_major_strides(chunk.box.sizes)) out["strides"] = dims(data.strides);
      chunks.push_back(std::move(out));
    }
    tensors.push_back({{"name", tensor.name}, {"dtype", to_string(tensor.dtype)}, {"shape", dims(tensor.shape)}, {"chunks", std::move(chunks)}});
  }
  for (const StoredEntry& e : layout.entries)
    entries.push_back({{"name", e.name}, {"file", e.file == no_file ? "" : layout.files[e.file]}, {"byte_offset", e.offset}, {"bytes", e.bytes}});
  return json{{"format", to_string(layout.format)}, {"tensors", std::move(tensors)}, {"entries", std::move(entries)}, {"bytes", layout.tensor_bytes()}};
}

}  // namespace shardalg::cli
