// The reference the MPI executor is measured against: MPI_Alltoallv moving a rank part's byte
// matrix between contiguous buffers.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <vector>

#include "shardalg/exec/rank_part.hpp"

namespace shardalg::bench {

// MPI_Alltoallv moving the same bytes between the same pairs, from and into contiguous buffers
// (no packing): the reference throughput. With `diagonal`, the byte matrix's diagonal too (each
// rank's local part, which a reshard also moves), as MPI's copy to self.
struct Alltoallv {
  std::vector<int> send_counts, receive_counts, send_offsets, receive_offsets;
  std::vector<std::byte> out, in;

  Alltoallv(const RankPart& part, std::size_t ranks, bool diagonal)
      : send_counts(ranks, 0), receive_counts(ranks, 0), send_offsets(ranks, 0), receive_offsets(ranks, 0) {
    for (const Message& m : part.sends()) send_counts[static_cast<std::size_t>(m.peer)] = static_cast<int>(m.bytes);
    for (const Message& m : part.receives()) receive_counts[static_cast<std::size_t>(m.peer)] = static_cast<int>(m.bytes);
    if (diagonal) {
      index_t local = 0;
      for (const LocalCopy& copy : part.local_copies()) local += copy.from.bytes();
      send_counts[static_cast<std::size_t>(part.rank())] = receive_counts[static_cast<std::size_t>(part.rank())] = static_cast<int>(local);
    }
    for (std::size_t p = 1; p < ranks; ++p) {
      send_offsets[p] = send_offsets[p - 1] + send_counts[p - 1];
      receive_offsets[p] = receive_offsets[p - 1] + receive_counts[p - 1];
    }
    out.resize(static_cast<std::size_t>(send_offsets[ranks - 1] + send_counts[ranks - 1]) + 1);
    in.resize(static_cast<std::size_t>(receive_offsets[ranks - 1] + receive_counts[ranks - 1]) + 1);
  }
  void operator()(MPI_Comm comm) {
    MPI_Alltoallv(out.data(), send_counts.data(), send_offsets.data(), MPI_BYTE, in.data(), receive_counts.data(), receive_offsets.data(),
                  MPI_BYTE, comm);
  }
};

}  // namespace shardalg::bench
