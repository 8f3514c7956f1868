// Verifying a checkpoint folder: every problem found, each naming the tensor, chunk and file.
//
// Checked: chunks have the tensor's rank and lie inside it; each has a file that exists and is
// long enough; DCP archives are well-formed, match the metadata (dtype, shape) and their stored
// bytes match their CRC-32; every element is stored, and where chunks overlap (replicas) their
// bytes are identical. Coverage is found on the grid the chunk boundaries cut, so a missing
// region is named by its box.
//
// Example: a DCP checkpoint whose rank-1 file was truncated gives
//   "tensor 'w' chunk 1 (offsets [3, 0]) in '__1_0.distcp': ... past its end (600 bytes)".
#pragma once

#include <set>
#include <string>
#include <vector>

#include "shardalg/core/work_share.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "shardalg/storage/checkpoint_files.hpp"

namespace shardalg {

struct CheckpointVerification {
  std::vector<std::string> problems;
  std::size_t tensors = 0, chunks = 0;
  std::uint64_t bytes = 0;  // tensor data bytes the chunks hold
  bool ok() const { return problems.empty(); }
};

// Every problem of the checkpoint (see the top of this file). `check_bytes` reads every stored
// byte to check the DCP archives' CRC-32s (otherwise only headers and overlapping replicas are read).
// With a `share` of several processes, each checks the CRC-32s of the chunks owners_by_size gives
// it and reports only those problems; the leader also checks and reports everything else.
inline CheckpointVerification verify_checkpoint(const Checkpoint& checkpoint, bool check_bytes = true, const ProcessShare& share = {}) {
  check_share(share);
  CheckpointVerification report;
  const CheckpointLayout& layout = checkpoint.layout();
  report.tensors = layout.tensors.size();
  std::vector<std::uint64_t> sizes;  // of every chunk, tensor by tensor
  for (const StoredTensor& tensor : layout.tensors)
    for (const StoredChunk& chunk : tensor.chunks) sizes.push_back(chunk.item_bytes);
  const std::vector<index_t> owners = owners_by_size(sizes, share.processes);
  std::vector<std::string> corrupted;  // CRC-32 mismatches: the problems every process reports for its chunks
  std::size_t chunk_number = 0;
  auto file_name = [&](std::uint32_t f) { return f == no_file ? std::string("(no file)") : "'" + layout.files[f] + "'"; };
  for (std::size_t t = 0; t < layout.tensors.size(); ++t) {
    const StoredTensor& tensor = layout.tensors[t];
    std::vector<std::size_t> valid;
    for (std::size_t c = 0; c < tensor.chunks.size(); ++c) {
      const StoredChunk& chunk = tensor.chunks[c];
      const bool crc_here = check_bytes && owners[chunk_number++] == share.process;
      ++report.chunks;
      std::string where = detail::concat("tensor '", tensor.name, "' chunk ", c, " (offsets ", chunk.box.offsets, " sizes ", chunk.box.sizes, ") in ", file_name(chunk.file));
      auto problem = [&](auto&&... why) { report.problems.push_back(detail::concat(where, ": ", why...)); };
      if (chunk.box.offsets.size() != tensor.shape.size() || chunk.box.sizes.size() != tensor.shape.size()) {
        problem("has ", chunk.box.sizes.size(), " dims; the tensor has ", tensor.shape.size());
        continue;
      }
      if (!chunk_inside(tensor, chunk.box)) {
        problem("lies outside the tensor's shape ", tensor.shape);
        continue;
      }
      report.bytes += static_cast<std::uint64_t>(volume(chunk.box.sizes) * element_bytes(tensor.dtype));
      if (chunk.file == no_file) {
        problem("no file is recorded for it");
        continue;
      }
      const InputFile* file = nullptr;
      try {
        file = &checkpoint.file(chunk.file);
      } catch (const FormatError& e) {
        problem(e.what());
        continue;
      }
      if (chunk.item_offset > file->size() || chunk.item_bytes > file->size() - chunk.item_offset) {
        problem("its bytes [", chunk.item_offset, ", ", chunk.item_offset + chunk.item_bytes, ") are past the file's end (", file->size(), " bytes)");
        continue;
      }
      try {
        ChunkData data = checkpoint.data(t, c);  // errors name the tensor, chunk and file
        if (crc_here && data.crc32) {
          std::uint32_t crc = 0;
          std::vector<std::byte> block;
          for (std::uint64_t at = 0; at < data.checked_bytes; at += block.size()) {
            block.resize(static_cast<std::size_t>(std::min<std::uint64_t>(data.checked_bytes - at, 16 << 20)));
            file->read(data.checked_offset + at, block);
            crc = crc32(block, crc);
          }
          if (crc != *data.crc32) {
            problem("its stored bytes do not match their CRC-32 (corrupted data)");
            corrupted.push_back(report.problems.back());
            continue;
          }
        }
      } catch (const FormatError& e) {
        report.problems.push_back(e.what());
        continue;
      }
      valid.push_back(c);
    }
    if (!share.leader()) continue;
    for (const Box& box : uncovered_regions(tensor, valid))
      report.problems.push_back(detail::concat("tensor '", tensor.name, "': elements at offsets ", box.offset, " sizes ", box.shape, " are in no chunk"));
    // Overlapping chunks must hold the same bytes: compare the overlap, in slabs of bounded size.
    for (auto [a, b] : overlapping_chunks(tensor, valid)) {
      const ChunkMeta &ca = tensor.chunks[a].box, &cb = tensor.chunks[b].box;
      ReadItem item = detail::dcp_read_item(0, ca, 0, cb);  // overlap: offsets within b (storage) and within a (dest)
      Dims in_a = item.dest_offsets, in_b = item.storage_offsets, lengths = item.lengths;
      std::size_t n = lengths.size();
      index_t elt = element_bytes(tensor.dtype), inner = n == 0 ? 1 : volume(lengths) / std::max<index_t>(1, lengths[0]);
      index_t rows_per_slab = n == 0 ? 1 : std::max<index_t>(1, (index_t{64} << 20) / std::max<index_t>(1, inner * elt));
      bool differ = false;
      try {
        for (index_t row = 0; row < (n == 0 ? 1 : lengths[0]) && !differ; row += rows_per_slab) {
          Dims slab = lengths, oa = in_a, ob = in_b;
          if (n > 0) {
            slab[0] = std::min(rows_per_slab, lengths[0] - row);
            oa[0] += row;
            ob[0] += row;
          }
          std::vector<std::byte> xa(static_cast<std::size_t>(volume(slab) * elt)), xb(xa.size());
          Dims strides = row_major_strides(slab);
          checkpoint.read_box(t, a, oa, slab, xa.data(), strides);
          checkpoint.read_box(t, b, ob, slab, xb.data(), strides);
          differ = xa != xb;
        }
      } catch (const FormatError& e) {
        report.problems.push_back(detail::concat("tensor '", tensor.name, "': comparing chunks ", a, " and ", b, ": ", e.what()));
        continue;
      }
      if (differ)
        report.problems.push_back(detail::concat("tensor '", tensor.name, "': chunks ", a, " (", file_name(tensor.chunks[a].file), ") and ", b, " (",
                                                 file_name(tensor.chunks[b].file), ") overlap at offsets ", ca.offsets, " + ", in_a, " sizes ", lengths,
                                                 " with different bytes"));
    }
  }
  for (const StoredEntry& entry : layout.entries) {
    if (entry.file == no_file) {
      report.problems.push_back(detail::concat("entry '", entry.name, "': no file is recorded for it"));
      continue;
    }
    try {
      const InputFile& file = checkpoint.file(entry.file);
      if (entry.offset > file.size() || entry.bytes > file.size() - entry.offset)
        report.problems.push_back(detail::concat("entry '", entry.name, "' in ", file_name(entry.file), ": its bytes [", entry.offset, ", ", entry.offset + entry.bytes,
                                                 ") are past the file's end (", file.size(), " bytes)"));
    } catch (const FormatError& e) {
      report.problems.push_back(detail::concat("entry '", entry.name, "': ", e.what()));
    }
  }
  if (!share.leader()) report.problems = std::move(corrupted);
  return report;
}

// How a checkpoint compares with a model saved under a recipe.
struct ModelMatch {
  std::vector<std::string> problems;  // tensors missing on either side, or of another shape or dtype
  std::size_t differing = 0;          // tensors whose saved chunks are not the recipe's (when no problems)
  std::string first_differing;
  bool matches() const { return problems.empty() && differing == 0; }
};

// Whether the checkpoint holds exactly `model`'s tensors (names, shapes, dtypes) and, if so,
// whether each tensor's saved chunks are those `recipe` gives it (replicas saved once).
inline ModelMatch match_model(const CheckpointLayout& checkpoint, const ModelSpec& model, std::string_view recipe) {
  ModelMatch match;
  std::set<std::string_view> names;
  for (const ModelTensor& t : model.tensors) {
    names.insert(t.name);
    auto found = checkpoint.find(t.name);
    if (!found)
      match.problems.push_back(detail::concat("model tensor '", t.name, "' is not in the checkpoint"));
    else if (checkpoint.tensors[*found].shape != t.shape || checkpoint.tensors[*found].dtype != t.dtype)
      match.problems.push_back(detail::concat("tensor '", t.name, "' is ", checkpoint.tensors[*found].dtype, " ", checkpoint.tensors[*found].shape,
                                              " in the checkpoint but ", t.dtype, " ", t.shape, " in model '", model.name, "'"));
  }
  for (const StoredTensor& t : checkpoint.tensors)
    if (!names.count(t.name)) match.problems.push_back(detail::concat("checkpoint tensor '", t.name, "' is not in model '", model.name, "'"));
  if (!match.problems.empty()) return match;
  ModelLayout saved = layout_model(model, recipe);
  for (std::size_t d = 0; d < saved.size(); ++d) {
    std::vector<ChunkMeta> expected = saved_chunks(saved[d].layout), actual;
    for (const StoredChunk& c : checkpoint.tensors[*checkpoint.find(saved[d].name)].chunks) actual.push_back(c.box);
    std::sort(actual.begin(), actual.end(), chunk_before);
    if (actual != expected && match.differing++ == 0) match.first_differing = saved[d].name;
  }
  return match;
}

}  // namespace shardalg
