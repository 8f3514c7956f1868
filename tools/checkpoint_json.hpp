// A checkpoint's inspection and read plans as JSON: what `shardalg checkpoint inspect --json` and
// `read-plan --json` print, and Python's Checkpoint.inspect() and read_plan() return.
//   {"format": "dcp"|"safetensors", "tensors": [{"name", "dtype", "shape", "chunks": [{"offset",
//    "shape", "file", "byte_offset", "bytes"[, "strides"]}]}], "entries": [{"name", "file",
//    "byte_offset", "bytes"}], "bytes": total tensor bytes}
// A chunk's byte_offset and bytes are its raw elements' place in the file (row-major and
// contiguous unless "strides", in elements, says otherwise).
#pragma once

#include <nlohmann/json.hpp>

#include "shardalg/storage/checkpoint_files.hpp"
#include "shardalg/storage/checkpoint_read_plan.hpp"

namespace shardalg::cli {

inline nlohmann::ordered_json dims_json(const Dims& d) { return nlohmann::ordered_json(std::vector<index_t>(d.begin(), d.end())); }

// A read item: {"rank", "tensor", "file", "byte_offset" (the saved chunk's raw data in the file),
// "chunk_shape", "storage_offsets", "dest_offsets", "lengths"}.
inline nlohmann::ordered_json read_json(const Checkpoint& ck, index_t rank, const CheckpointRead& r) {
  const StoredTensor& tensor = ck.layout().tensors[r.tensor];
  const StoredChunk& chunk = tensor.chunks[r.chunk];
  return {{"rank", rank}, {"tensor", tensor.name}, {"file", ck.layout().files[chunk.file]}, {"byte_offset", ck.data(r.tensor, r.chunk).byte_offset},
          {"chunk_shape", dims_json(chunk.box.sizes)}, {"storage_offsets", dims_json(r.storage_offsets)}, {"dest_offsets", dims_json(r.dest_offsets)},
          {"lengths", dims_json(r.lengths)}};
}

// A read item of a load from the checkpoint DCP would save (dcp_saved_layout), for `rank`'s
// piece `piece`: {"rank", "tensor", "file", "storage_chunk_offsets", "storage_chunk_sizes",
// "dest_chunk_offsets", "dest_chunk_sizes", "storage_offsets", "dest_offsets", "lengths"}:
// DCP's ReadItem (storage_index and dest_index offsets, their chunk sizes, the offsets within
// them and the lengths). What `shardalg plan --read-items --json` prints and Python's
// ModelReshardPlan.read_items returns.
inline nlohmann::ordered_json dcp_read_item_json(const CheckpointLayout& saved, index_t rank, const CheckpointRead& r, const Box& piece) {
  const StoredTensor& tensor = saved.tensors[r.tensor];
  const StoredChunk& chunk = tensor.chunks[r.chunk];
  return {{"rank", rank},
          {"tensor", tensor.name},
          {"file", saved.files[chunk.file]},
          {"storage_chunk_offsets", dims_json(chunk.box.offsets)},
          {"storage_chunk_sizes", dims_json(chunk.box.sizes)},
          {"dest_chunk_offsets", dims_json(piece.offset)},
          {"dest_chunk_sizes", dims_json(piece.shape)},
          {"storage_offsets", dims_json(r.storage_offsets)},
          {"dest_offsets", dims_json(r.dest_offsets)},
          {"lengths", dims_json(r.lengths)}};
}

// Calls visit(rank, read, piece) for each read item of `ranks` loading `destination` from
// `saved`, every rank reading all it wants itself (as DCP's loader does), ranks in the order given.
template <class Visit>
void for_each_dcp_read_item(const CheckpointLayout& saved, const ModelLayout& destination, const std::vector<index_t>& ranks, Visit&& visit) {
  CheckpointReadPlanner planner(saved, destination);
  for (index_t rank : ranks) {
    std::vector<Piece> pieces;  // the rank's pieces of the tensor last read
    std::size_t pieces_of = destination.size();
    for (const CheckpointRead& r : planner.plan(rank, false).reads) {
      std::size_t d = *destination.find(saved.tensors[r.tensor].name);
      if (d != pieces_of) pieces = destination[d].layout.pieces(rank), pieces_of = d;
      visit(rank, r, pieces[r.wanted].global);
    }
  }
}

// A forward: {"from", "to", "tensor", "src_offsets", "dest_offsets", "lengths"}.
inline nlohmann::ordered_json forward_json(const CheckpointLayout& layout, const CheckpointForward& f) {
  return {{"from", f.from}, {"to", f.to}, {"tensor", layout.tensors[f.tensor].name}, {"src_offsets", dims_json(f.src_offsets)},
          {"dest_offsets", dims_json(f.dest_offsets)}, {"lengths", dims_json(f.lengths)}};
}

inline nlohmann::ordered_json checkpoint_inspection(const Checkpoint& ck) {
  using json = nlohmann::ordered_json;
  const CheckpointLayout& layout = ck.layout();
  json tensors = json::array(), entries = json::array();
  for (std::size_t t = 0; t < layout.tensors.size(); ++t) {
    const StoredTensor& tensor = layout.tensors[t];
    json chunks = json::array();
    for (std::size_t c = 0; c < tensor.chunks.size(); ++c) {
      const StoredChunk& chunk = tensor.chunks[c];
      ChunkData data = ck.data(t, c);
      json out{{"offset", dims_json(chunk.box.offsets)}, {"shape", dims_json(chunk.box.sizes)}, {"file", layout.files[chunk.file]},
               {"byte_offset", data.byte_offset}, {"bytes", volume(chunk.box.sizes) * element_bytes(tensor.dtype)}};
      if (data.strides != row_major_strides(chunk.box.sizes)) out["strides"] = dims_json(data.strides);
      chunks.push_back(std::move(out));
    }
    tensors.push_back({{"name", tensor.name}, {"dtype", to_string(tensor.dtype)}, {"shape", dims_json(tensor.shape)}, {"chunks", std::move(chunks)}});
  }
  for (const StoredEntry& e : layout.entries)
    entries.push_back({{"name", e.name}, {"file", e.file == no_file ? "" : layout.files[e.file]}, {"byte_offset", e.offset}, {"bytes", e.bytes}});
  return json{{"format", to_string(layout.format)}, {"tensors", std::move(tensors)}, {"entries", std::move(entries)}, {"bytes", layout.tensor_bytes()}};
}

}  // namespace shardalg::cli
