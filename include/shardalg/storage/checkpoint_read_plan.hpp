// Read plans: which saved chunks each rank reads to fill its part of a destination layout, each
// stored byte read once per job.
//
// A rank wants its pieces of every tensor (wanted chunks, in buffer order). Ranks whose wanted
// chunks are the same box (replicas: Replicate placements, or several ranks loading one whole
// tensor) form a group; the box is cut along its dim 0 in torch.chunk fashion into one part per
// member, each member reads its part and forwards it to the others. So every stored element a
// job loads is read from storage once, and readers share the reading evenly. Read items follow
// DCP's semantics (plan/checkpoint_read.hpp): offsets within the saved chunk (storage) and
// within the wanted chunk (destination).
//
// A rank's plan is built from its own pieces and those of its replicas only: time proportional
// to what it lists, whatever the number of ranks.
//
// Example: a [6, 4] tensor saved by 2 ranks (rows [0,3), [3,6)), loaded `replicated ranks=2`:
//   rank 0 reads rows [0,3) (chunk 0) and forwards them to rank 1; rank 1 reads rows [3,6)
//   (chunk 1) and forwards them to rank 0. Each byte is read once.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

#include "shardalg/layout/model_layout.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "shardalg/storage/checkpoint_layout.hpp"

namespace shardalg {

struct CheckpointRead {
  std::size_t tensor = 0;  // checkpoint tensor
  std::size_t wanted = 0;  // the rank's piece of it (index into the destination's pieces(rank))
  std::size_t chunk = 0;   // saved chunk
  Dims storage_offsets, dest_offsets, lengths;
};

struct CheckpointForward {
  index_t from = 0, to = 0;
  std::size_t tensor = 0;
  std::size_t wanted_from = 0, wanted_to = 0;  // the piece index at the sender and at the receiver
  Dims src_offsets, dest_offsets, lengths;      // within the wanted chunk (the same box at both)
};

struct RankReadPlan {
  index_t rank = 0;
  std::vector<CheckpointRead> reads;
  std::vector<CheckpointForward> sends, receives;
};

// The model a checkpoint describes: each tensor's name, shape and dtype (role replicated), so a
// recipe applies to every tensor (`fsdp dp=N`: Shard(0) over N ranks; `replicated ranks=N`).
inline ModelSpec checkpoint_model(const CheckpointLayout& checkpoint, std::string name = "checkpoint") {
  ModelSpec model{std::move(name), {}};
  for (const StoredTensor& t : checkpoint.tensors) model.tensors.push_back(ModelTensor{t.name, t.shape, TensorRole::replicated, t.dtype});
  return model;
}

class CheckpointReadPlanner {
 public:
  // Pairs each destination tensor with the checkpoint's tensor of the same name.
  // Errors naming the tensor: missing from the checkpoint, another shape or dtype there, or
  // elements no chunk of the checkpoint holds (naming the first such region).
  CheckpointReadPlanner(const CheckpointLayout& checkpoint, const ModelLayout& destination) : checkpoint_(checkpoint), destination_(destination) {
    indexes_.resize(checkpoint.tensors.size());
    for (std::size_t d = 0; d < destination.size(); ++d) {
      const NamedTensorLayout& want = destination[d];
      auto t = checkpoint.find(want.name);
      if (!t) detail::fail("read plan: tensor '", want.name, "' of the destination is not in the checkpoint");
      const StoredTensor& saved = checkpoint.tensors[*t];
      if (saved.shape != want.layout.global_shape() || saved.dtype != want.dtype)
        detail::fail("read plan: tensor '", want.name, "' is ", saved.dtype, " ", saved.shape, " in the checkpoint but ", want.dtype, " ",
                     want.layout.global_shape(), " in the destination");
      std::vector<Box> missing = uncovered_regions(saved, chunks_in_bounds(saved));  // would be left unwritten: refused
      if (!missing.empty())
        detail::fail("read plan: tensor '", want.name, "' is incomplete in the checkpoint: elements at offsets ", missing.front().offset, " sizes ",
                     missing.front().shape, " are in no chunk (checkpoint verify lists every problem)");
      checkpoint_tensor_.push_back(*t);
    }
  }

  const ModelLayout& destination() const { return destination_; }
  // The checkpoint tensor of destination tensor d.
  std::size_t checkpoint_tensor(std::size_t d) const { return checkpoint_tensor_[d]; }

  // Rank `rank`'s reads and forwards. `share_replicas` false: the rank reads all it wants itself
  // (no forwards; for a rank loading alone).
  RankReadPlan plan(index_t rank, bool share_replicas = true) {
    RankReadPlan result;
    result.rank = rank;
    // Room for a read per tensor up front: growing by doubling re-copied and re-faulted the reads
    // (for Llama-3-405B at 1,024 ranks, 1,137 of 312 bytes), most of a plan's time.
    result.reads.reserve(destination_.size());
    for (std::size_t d = 0; d < destination_.size(); ++d) {
      const TensorLayout& layout = destination_[d].layout;
      std::size_t t = checkpoint_tensor_[d];
      std::vector<Piece> pieces = layout.pieces(rank);
      for (std::size_t w = 0; w < pieces.size(); ++w) {
        const Box& box = pieces[w].global;
        if (box.volume() == 0) continue;
        std::vector<std::pair<index_t, std::size_t>> group{{rank, w}};  // (rank, its piece index), sorted by rank
        if (share_replicas && !layout.single_holder()) group = replicas(layout, box, rank, w);
        std::size_t me = static_cast<std::size_t>(std::find_if(group.begin(), group.end(), [&](auto& g) { return g.first == rank; }) - group.begin());
        for (std::size_t k = 0; k < group.size(); ++k) {
          auto [offset, length] = part(box, group.size(), k);
          if (length.empty() ? k > 0 : volume(length) == 0) continue;
          if (k != me) {
            result.receives.push_back(CheckpointForward{group[k].first, rank, t, group[k].second, w, offset, offset, length});
            continue;
          }
          add_reads(result, t, w, box, offset, length);
          for (std::size_t j = 0; j < group.size(); ++j)
            if (j != me) result.sends.push_back(CheckpointForward{rank, group[j].first, t, w, group[j].second, offset, offset, length});
        }
      }
    }
    return result;
  }

 private:
  // The ranks holding exactly `box` as one of their pieces, with that piece's index.
  static std::vector<std::pair<index_t, std::size_t>> replicas(const TensorLayout& layout, const Box& box, index_t rank, std::size_t w) {
    std::vector<std::pair<index_t, std::size_t>> group;
    for (index_t r : layout.ranks_holding(box)) {
      if (r == rank) {
        group.emplace_back(r, w);
        continue;
      }
      std::vector<Piece> theirs = layout.pieces(r);
      for (std::size_t k = 0; k < theirs.size(); ++k)
        if (theirs[k].global == box) {
          group.emplace_back(r, k);
          break;
        }
    }
    return group;
  }
  // Part k of n of a box: its dim 0 cut torch.chunk-style (offsets within the box).
  static std::pair<Dims, Dims> part(const Box& box, std::size_t n, std::size_t k) {
    Dims offset(box.ndim(), 0), length = box.shape;
    if (box.ndim() == 0) return {offset, length};
    index_t size = box.shape[0], step = (size + static_cast<index_t>(n) - 1) / static_cast<index_t>(n);
    index_t begin = std::min(size, step * static_cast<index_t>(k));
    offset[0] = begin;
    length[0] = std::min(size, begin + step) - begin;
    return {offset, length};
  }
  void add_reads(RankReadPlan& result, std::size_t t, std::size_t w, const Box& box, const Dims& offset, const Dims& length) {
    if (!indexes_[t]) {
      std::vector<ChunkMeta> saved;
      saved.reserve(checkpoint_.tensors[t].chunks.size());
      for (const StoredChunk& c : checkpoint_.tensors[t].chunks) saved.push_back(c.box);
      indexes_[t] = std::make_unique<CheckpointIndex>(std::move(saved));
    }
    Dims start = box.offset;
    for (std::size_t d = 0; d < start.size(); ++d) start[d] += offset[d];
    for (ReadItem& item : indexes_[t]->read_items({ChunkMeta{start, length}})) {
      for (std::size_t d = 0; d < offset.size(); ++d) item.dest_offsets[d] += offset[d];
      result.reads.push_back(CheckpointRead{t, w, item.saved, std::move(item.storage_offsets), std::move(item.dest_offsets), std::move(item.lengths)});
    }
  }

  const CheckpointLayout& checkpoint_;
  const ModelLayout& destination_;
  std::vector<std::size_t> checkpoint_tensor_;
  std::vector<std::unique_ptr<CheckpointIndex>> indexes_;  // per checkpoint tensor, built on first use
};

}  // namespace shardalg
