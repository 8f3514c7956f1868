// What a converted checkpoint will hold, decided before any byte moves: its files, every chunk's
// box and byte range in them, and for each chunk the reads of the source that fill it.
//
// - DCP under a destination layout: every box a rank holds is one chunk, saved once (replicas
//   deduplicated, as DCP's saver does) in the file of the first rank holding it,
//   `__<rank>_0.distcp`, as a torch.save archive; non-tensor entries are copied into rank 0's file.
// - safetensors per rank (torch's HuggingFaceStorageWriter with save_sharded): each rank's boxes
//   in `shard-<rank+1>-model-<k>-of-<n>.safetensors` files whose metadata records each box's offset.
// - Hugging Face safetensors (consolidated): each tensor whole, in source order, in files of at
//   most `max_file_bytes` (a larger tensor gets a file of its own): `model.safetensors` when one
//   file suffices, else `model-0000k-of-0000n.safetensors` with `model.safetensors.index.json`.
//
// Example: a DCP checkpoint of "w" fp32 [5, 3] saved at 2 ranks, planned as DCP under
// "fsdp dp=3": chunks rows [0,2), [2,4), [4,5) in __0_0, __1_0, __2_0.distcp; the chunk of rows
// [2,4) reads row 2 of source chunk 0 and row 3 of source chunk 1.
#pragma once

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "shardalg/storage/checkpoint_read_plan.hpp"
#include "shardalg/storage/safetensors.hpp"
#include "shardalg/storage/torch_archive_writer.hpp"

namespace shardalg {

struct OutputChunk {
  std::size_t tensor = 0, chunk = 0;  // in the output layout
  std::size_t source_tensor = 0;
  std::uint64_t data_offset = 0;      // where the chunk's elements start in its file
  std::vector<ReadItem> reads;        // from the source tensor's chunks (dest offsets within the chunk)
};

struct OutputEntry {
  std::size_t entry = 0, source_entry = 0;
};

struct CheckpointOutput {
  CheckpointLayout layout;                 // files, tensors, chunks with their byte ranges, entries
  std::vector<std::uint64_t> file_bytes;   // each file's final size
  std::vector<std::string> file_headers;   // safetensors: each file's header (at byte 0)
  std::vector<OutputChunk> chunks;         // every chunk, largest first (for balancing threads)
  std::vector<OutputEntry> entries;
  std::string index_json;                  // Hugging Face: model.safetensors.index.json when several files
  std::uint64_t data_bytes = 0;            // tensor elements' bytes to copy

  std::uint64_t total_bytes() const {
    std::uint64_t n = 0;
    for (std::uint64_t b : file_bytes) n += b;
    return n;
  }
};

namespace detail {

inline void add_reads(CheckpointOutput& out, const CheckpointLayout& source, std::vector<std::unique_ptr<CheckpointIndex>>& indexes) {
  for (OutputChunk& chunk : out.chunks) {
    std::size_t s = chunk.source_tensor;
    if (!indexes[s]) {
      std::vector<ChunkMeta> saved;
      for (const StoredChunk& c : source.tensors[s].chunks) saved.push_back(c.box);
      indexes[s] = std::make_unique<CheckpointIndex>(std::move(saved));
    }
    chunk.reads = indexes[s]->read_items({out.layout.tensors[chunk.tensor].chunks[chunk.chunk].box});
    const StoredTensor& tensor = out.layout.tensors[chunk.tensor];
    out.data_bytes += static_cast<std::uint64_t>(volume(tensor.chunks[chunk.chunk].box.sizes) * element_bytes(tensor.dtype));
  }
  std::stable_sort(out.chunks.begin(), out.chunks.end(), [&](const OutputChunk& a, const OutputChunk& b) {
    return out.layout.tensors[a.tensor].chunks[a.chunk].item_bytes > out.layout.tensors[b.tensor].chunks[b.chunk].item_bytes;
  });
}

}  // namespace detail

// The module paths to write DCP's records under: those of `torch_version` ("1.13" or "2"), or when
// empty the source's own (a safetensors source: torch 2). Error naming any other version.
inline DcpFlavor dcp_flavor_for(const CheckpointLayout& source, std::string_view torch_version) {
  if (torch_version == "1.13") return DcpFlavor::torch_1_13;
  if (torch_version == "2") return DcpFlavor::torch_2;
  if (!torch_version.empty()) detail::fail("torch version '", torch_version, "': DCP is written for '1.13' or '2'");
  return source.format == CheckpointFormat::dcp ? source.dcp_flavor : DcpFlavor::torch_2;
}

namespace detail {

// Calls visit(d, rank, box) for every box a rank holds of destination tensor d, each box once
// (replicas are saved by the first rank holding them, as DCP's saver deduplicates them), ranks
// ascending. Returns the planner that matched `source`'s tensors to the destination's.
// Errors: as CheckpointReadPlanner's (a tensor missing from the source, of another shape or
// dtype), and a source tensor the destination does not place (nothing is dropped silently).
template <class Visit>
CheckpointReadPlanner for_each_saved_box(const CheckpointLayout& source, const ModelLayout& destination, Visit&& visit) {
  CheckpointReadPlanner match(source, destination);
  std::vector<bool> placed(source.tensors.size(), false);
  for (std::size_t d = 0; d < destination.size(); ++d) placed[match.checkpoint_tensor(d)] = true;
  for (std::size_t t = 0; t < source.tensors.size(); ++t)
    if (!placed[t]) fail("the destination layout has no place for tensor '", source.tensors[t].name, "' of the checkpoint (nothing is dropped silently)");
  const std::vector<index_t>& ranks = destination.ranks();
  for (std::size_t d = 0; d < destination.size(); ++d) {
    std::set<std::pair<std::vector<index_t>, std::vector<index_t>>> seen;
    for (index_t rank : ranks)
      for (Piece& piece : destination[d].layout.pieces(rank)) {
        if (piece.global.volume() == 0) continue;
        if (seen.emplace(std::vector<index_t>(piece.global.offset.begin(), piece.global.offset.end()),
                         std::vector<index_t>(piece.global.shape.begin(), piece.global.shape.end()))
                .second)
          visit(d, rank, piece.global);
      }
  }
  return match;
}

// Refuses a source with non-tensor entries for a safetensors output unless they are skipped.
inline void refuse_entries_in_safetensors(const CheckpointLayout& source, bool skip_entries) {
  if (source.entries.empty() || skip_entries) return;
  std::string names;
  for (std::size_t e = 0; e < source.entries.size() && e < 5; ++e) names += (e ? ", '" : "'") + source.entries[e].name + "'";
  fail("safetensors holds tensors only; the checkpoint also has ", source.entries.size(), " non-tensor entries (", names,
       source.entries.size() > 5 ? ", ..." : "", "): leave them out explicitly (--skip-entries) to go on");
}

}  // namespace detail

// The DCP checkpoint of `source`'s tensors under `destination` (tensors matched by name). Errors:
// see detail::for_each_saved_box.
inline CheckpointOutput plan_dcp_output(const CheckpointLayout& source, const ModelLayout& destination, DcpFlavor flavor) {
  CheckpointOutput out;
  CheckpointLayout& layout = out.layout;
  layout.format = CheckpointFormat::dcp;
  layout.dcp_flavor = flavor;
  std::map<index_t, std::uint32_t> file_of_rank;
  auto file_of = [&](index_t rank) {
    auto [it, added] = file_of_rank.emplace(rank, static_cast<std::uint32_t>(layout.files.size()));
    if (added) {
      layout.files.push_back(detail::concat("__", rank, "_0.distcp"));
      out.file_bytes.push_back(0);
    }
    return it->second;
  };
  for (std::size_t d = 0; d < destination.size(); ++d)
    layout.tensors.push_back(StoredTensor{destination[d].name, destination[d].dtype, destination[d].layout.global_shape(), {}});
  CheckpointReadPlanner match = detail::for_each_saved_box(source, destination, [&](std::size_t d, index_t rank, const Box& box) {
    StoredTensor& tensor = layout.tensors[d];
    TorchArchiveWriter archive(tensor.dtype, box.shape);
    std::uint32_t f = file_of(rank);
    out.chunks.push_back(OutputChunk{d, tensor.chunks.size(), 0, out.file_bytes[f] + archive.data_offset(), {}});
    tensor.chunks.push_back(StoredChunk{ChunkMeta{box.offset, box.shape}, f, out.file_bytes[f], archive.size()});
    out.file_bytes[f] += archive.size();
  });
  for (OutputChunk& chunk : out.chunks) chunk.source_tensor = match.checkpoint_tensor(chunk.tensor);
  const std::vector<index_t>& ranks = destination.ranks();
  for (std::size_t e = 0; e < source.entries.size(); ++e) {
    std::uint32_t f = file_of(ranks.empty() ? 0 : ranks.front());
    layout.entries.push_back(StoredEntry{source.entries[e].name, f, out.file_bytes[f], source.entries[e].bytes});
    out.entries.push_back(OutputEntry{e, e});
    out.file_bytes[f] += source.entries[e].bytes;
  }
  std::vector<std::unique_ptr<CheckpointIndex>> indexes(source.tensors.size());
  detail::add_reads(out, source, indexes);
  return out;
}

// The checkpoint DCP would save of `layout`, without its bytes: each rank's boxes as chunks in
// __<rank>_0.distcp, a replicated box once, by the first rank holding it (DCP's deduplication).
// Planning reads against it (CheckpointReadPlanner) gives the read items a load from such a
// checkpoint issues, before any checkpoint exists.
// Example: "w" [6] Replicate on dp=2 -> one chunk [0, 6) in __0_0.distcp.
inline CheckpointLayout dcp_saved_layout(const ModelLayout& layout) {
  CheckpointLayout whole;  // every tensor in one chunk: what the saved boxes are cut from
  for (std::size_t t = 0; t < layout.size(); ++t) {
    const Dims& shape = layout[t].layout.global_shape();
    whole.tensors.push_back(StoredTensor{layout[t].name, layout[t].dtype, shape, {StoredChunk{ChunkMeta{Dims(shape.size(), 0), shape}}}});
  }
  return plan_dcp_output(whole, layout, DcpFlavor::torch_2).layout;
}

// `source`'s tensors under `destination` as safetensors per rank, in the layout of
// torch.distributed.checkpoint's HuggingFaceStorageWriter(save_sharded=True): rank r's boxes in
// `shard-<r+1>-model-<k>-of-<n>.safetensors` (5 digits each), each file's `__metadata__` holding
// DCP_SHARDING_INFO, a JSON text {tensor: {"saved_offsets": [...]}} giving each box's global
// offset. A tensor appears once per file, so a rank's k-th box of a tensor goes to its k-th file
// (n: the most boxes a rank holds of one tensor). Replicas are saved once, by the first rank
// holding them. Errors: as plan_dcp_output's, and non-tensor entries unless `skip_entries`.
inline CheckpointOutput plan_sharded_safetensors_output(const CheckpointLayout& source, const ModelLayout& destination, bool skip_entries = false) {
  detail::refuse_entries_in_safetensors(source, skip_entries);
  struct SavedBox {
    std::size_t tensor;
    Box box;
  };
  std::map<std::pair<index_t, std::size_t>, std::vector<SavedBox>> boxes;  // (rank, k) -> boxes
  std::map<std::pair<index_t, std::size_t>, std::size_t> count;           // (rank, tensor) -> boxes so far
  std::size_t files_per_rank = 0;
  CheckpointReadPlanner match = detail::for_each_saved_box(source, destination, [&](std::size_t d, index_t rank, const Box& box) {
    std::size_t k = count[{rank, d}]++;
    files_per_rank = std::max(files_per_rank, k + 1);
    boxes[{rank, k}].push_back(SavedBox{d, box});
  });
  CheckpointOutput out;
  CheckpointLayout& layout = out.layout;
  layout.format = CheckpointFormat::safetensors;
  for (std::size_t d = 0; d < destination.size(); ++d)
    layout.tensors.push_back(StoredTensor{destination[d].name, destination[d].dtype, destination[d].layout.global_shape(), {}});
  for (const auto& [key, saved] : boxes) {
    char name[96];
    std::snprintf(name, sizeof name, "shard-%05lld-model-%05zu-of-%05zu.safetensors", static_cast<long long>(key.first) + 1, key.second + 1, files_per_rank);
    std::uint32_t f = static_cast<std::uint32_t>(layout.files.size());
    layout.files.push_back(name);
    std::vector<SafetensorsItem> items;
    nlohmann::ordered_json sharding = nlohmann::ordered_json::object();
    for (const SavedBox& b : saved) {
      items.push_back(SafetensorsItem{destination[b.tensor].name, destination[b.tensor].dtype, b.box.shape});
      sharding[destination[b.tensor].name] = {{"saved_offsets", std::vector<index_t>(b.box.offset.begin(), b.box.offset.end())}};
    }
    std::string header = safetensors_header_bytes(items, {{std::string(dcp_sharding_info_key), sharding.dump()}, {"DCP_VERSION", "1.0"}, {"format", "pt"}});
    std::uint64_t at = header.size();
    for (const SavedBox& b : saved) {
      StoredTensor& tensor = layout.tensors[b.tensor];
      auto bytes = static_cast<std::uint64_t>(volume(b.box.shape) * element_bytes(tensor.dtype));
      out.chunks.push_back(OutputChunk{b.tensor, tensor.chunks.size(), match.checkpoint_tensor(b.tensor), at, {}});
      tensor.chunks.push_back(StoredChunk{ChunkMeta{b.box.offset, b.box.shape}, f, at, bytes});
      at += bytes;
    }
    out.file_bytes.push_back(at);
    out.file_headers.push_back(std::move(header));
  }
  std::vector<std::unique_ptr<CheckpointIndex>> indexes(source.tensors.size());
  detail::add_reads(out, source, indexes);
  return out;
}

// The output of a reshard in `format`: "dcp" (with `torch_version`'s module paths, see
// dcp_flavor_for; entries copied) or "safetensors" (per rank, see plan_sharded_safetensors_output;
// entries refused unless `skip_entries`). Errors name another format, or a torch version or
// skip_entries given where they do not apply.
inline CheckpointOutput plan_reshard_output(const CheckpointLayout& source, const ModelLayout& destination, std::string_view format,
                                            std::string_view torch_version = {}, bool skip_entries = false) {
  if (format == "dcp") {
    if (skip_entries) detail::fail("skipping entries applies to the safetensors format; DCP keeps them");
    return plan_dcp_output(source, destination, dcp_flavor_for(source, torch_version));
  }
  if (format != "safetensors") detail::fail("unknown checkpoint format '", format, "' (dcp, safetensors)");
  if (!torch_version.empty()) detail::fail("a torch version (", torch_version, ") applies to the dcp format, not safetensors");
  return plan_sharded_safetensors_output(source, destination, skip_entries);
}

// Every tensor of `source` whole, as Hugging Face safetensors files of at most `max_file_bytes`.
// Errors: non-tensor entries in the source (safetensors holds tensors only) unless `skip_entries`.
inline CheckpointOutput plan_safetensors_output(const CheckpointLayout& source, std::uint64_t max_file_bytes, bool skip_entries = false) {
  detail::refuse_entries_in_safetensors(source, skip_entries);
  CheckpointOutput out;
  CheckpointLayout& layout = out.layout;
  layout.format = CheckpointFormat::safetensors;
  // Group tensors into files in order, starting a new file when the next tensor would overflow.
  std::vector<std::vector<std::size_t>> groups;
  std::uint64_t in_group = 0;
  for (std::size_t t = 0; t < source.tensors.size(); ++t) {
    const StoredTensor& tensor = source.tensors[t];
    std::uint64_t bytes = static_cast<std::uint64_t>(checked_mul(volume(tensor.shape), element_bytes(tensor.dtype)));
    if (groups.empty() || (in_group > 0 && in_group + bytes > max_file_bytes)) {
      groups.emplace_back();
      in_group = 0;
    }
    groups.back().push_back(t);
    in_group += bytes;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::uint64_t total = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    char name[64];
    if (groups.size() == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", g + 1, groups.size());
    std::uint32_t f = static_cast<std::uint32_t>(layout.files.size());
    layout.files.push_back(name);
    std::vector<SafetensorsItem> items;
    for (std::size_t t : groups[g]) items.push_back(SafetensorsItem{source.tensors[t].name, source.tensors[t].dtype, source.tensors[t].shape});
    std::string header = safetensors_header_bytes(items);
    std::uint64_t at = header.size();
    for (std::size_t t : groups[g]) {
      const StoredTensor& s = source.tensors[t];
      std::uint64_t bytes = static_cast<std::uint64_t>(volume(s.shape) * element_bytes(s.dtype));
      StoredChunk chunk{ChunkMeta{Dims(s.shape.size(), 0), s.shape}, f, at, bytes};
      out.chunks.push_back(OutputChunk{layout.tensors.size(), 0, t, at, {}});
      layout.tensors.push_back(StoredTensor{s.name, s.dtype, s.shape, {std::move(chunk)}});
      weight_map[s.name] = name;
      at += bytes;
      total += bytes;
    }
    out.file_bytes.push_back(at);
    out.file_headers.push_back(std::move(header));
  }
  if (groups.size() > 1)
    out.index_json = nlohmann::ordered_json{{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}}.dump(2) + "\n";
  std::vector<std::unique_ptr<CheckpointIndex>> indexes(source.tensors.size());
  detail::add_reads(out, source, indexes);
  return out;
}

}  // namespace shardalg
