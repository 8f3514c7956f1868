// How one placement splits one local dimension among the ranks of a mesh dim (docs/semantics.md
// sections 1-2).
#pragma once

#include "shardalg/core/chunk.hpp"
#include "shardalg/core/index_map.hpp"
#include "shardalg/placement/placement.hpp"
#include "shardalg/placement/placement_text.hpp"

namespace shardalg {

// The most runs one rank's part of one dimension may have. A split factor or block size so fine
// that a rank would hold more runs than this is refused with an error rather than enumerated
// (a block-cyclic dim of 2^40 elements in blocks of 1, say): no real layout comes near it.
inline constexpr index_t max_runs_per_dim = index_t{1} << 24;

// The positions of a local dimension of `length` that mesh coordinate `index` (of `num_chunks`)
// keeps under a Shard or StridedShard placement, in local order, as positions of that dimension.
// Shard: one torch.chunk piece. StridedShard nested-chunk: piece_j[index] for each of the sf
// pieces. StridedShard legacy: pieces index, index+k, ... of chunk(length, k*sf). BlockCyclic:
// blocks index-src, index-src+k, ... (mod k) of the dim cut into blocks of the block size.
// Example: StridedShard(0, 2), length 9, 4 chunks, index 0 -> {[0,2), [5,6)}.
// Precondition: p.splits_tensor(), length >= 0, num_chunks >= 1, 0 <= index < num_chunks.
// Throws when the part would have more than max_runs_per_dim runs.
constexpr IndexMap local_split(const Placement& p, index_t length, index_t num_chunks, index_t index) {
  if (p.is_shard()) {
    Chunk c = chunk_of(length, num_chunks, index);
    return IndexMap::contiguous(c.offset, c.size);
  }
  // At most one run per block a rank keeps, or per non-empty piece of a strided split.
  index_t most_runs = p.is_block_cyclic() ? ceil_div(ceil_div(length, p.block_size()), num_chunks)
                                          : std::min(p.split_factor(), length);
  if (most_runs > max_runs_per_dim)
    detail::fail("placement ", to_string(p), " on a dimension of length ", length, " split ", num_chunks,
                 " ways: a rank would hold up to ", most_runs, " separate runs, more than the limit of ", max_runs_per_dim);
  IndexMap map;
  if (p.is_block_cyclic()) {
    index_t block = p.block_size();
    index_t first = ((index - p.source_coordinate()) % num_chunks + num_chunks) % num_chunks;
    for (index_t k = first; k <= (length - 1) / block; k += num_chunks) {
      index_t begin = k * block;  // < length, no overflow
      map.append(begin, std::min(block, length - begin));
    }
    return map;
  }
  index_t sf = p.split_factor();
  if (p.semantics() == StridedSemantics::nested_chunk) {
    for (index_t j = 0; j < sf; ++j) {
      Chunk piece = chunk_of(length, sf, j);
      if (piece.size == 0) break;  // torch.chunk's empty pieces are the trailing ones
      Chunk part = chunk_of(piece.size, num_chunks, index);
      map.append(piece.offset + part.offset, part.size);
    }
  } else {
    index_t pieces = checked_mul(num_chunks, sf);
    for (index_t j = 0; j < sf; ++j) {
      Chunk c = chunk_of(length, pieces, index + j * num_chunks);
      if (c.size == 0) break;  // and so are all later ones
      map.append(c.offset, c.size);
    }
  }
  return map;
}

}  // namespace shardalg
