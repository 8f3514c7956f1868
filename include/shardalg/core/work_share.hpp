// Dividing work among cooperating processes (`mpirun -np K shardalg checkpoint reshard ...`): each
// item (a file to write, a chunk to compare) goes to exactly one process, balanced by size. Every
// process computes the same division from the same sizes, so none needs to be told its share.
//
// Example: items of 5, 4, 3 and 3 bytes over 2 processes. Largest first, each to the least loaded
// process (the lowest-numbered on a tie): 5 -> 0, 4 -> 1, 3 -> 1, 3 -> 0; loads 8 and 7:
//   owners_by_size({5, 4, 3, 3}, 2) == {0, 1, 1, 0}
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "shardalg/core/error.hpp"
#include "shardalg/core/rank_limit.hpp"

namespace shardalg {

// This process's place among the processes sharing one piece of work.
struct ProcessShare {
  index_t process = 0, processes = 1;

  bool leader() const { return process == 0; }
};

// Error naming the share unless 0 <= process < processes <= max_ranks.
inline void check_share(const ProcessShare& share) {
  if (share.processes < 1 || share.processes > max_ranks || share.process < 0 || share.process >= share.processes)
    detail::fail("process ", share.process, " of ", share.processes, ": a share needs 0 <= process < processes <= ", max_ranks);
}

// The process (0..processes-1) that takes each item: largest items first, each to the least loaded
// process so far. Postcondition: every load is at most the smallest load + the largest item.
// Error: processes outside 1..max_ranks.
inline std::vector<index_t> owners_by_size(std::span<const std::uint64_t> sizes, index_t processes) {
  check_share(ProcessShare{0, processes});
  std::vector<std::size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return sizes[a] > sizes[b]; });
  std::vector<index_t> owners(sizes.size(), 0);
  if (processes == 1) return owners;
  // Never more loads than items: a huge process count allocates nothing for processes left idle.
  std::vector<std::uint64_t> load(static_cast<std::size_t>(std::min<index_t>(processes, static_cast<index_t>(sizes.size()))), 0);
  for (std::size_t item : order) {
    auto least = std::min_element(load.begin(), load.end());  // the first of equal loads: the lowest process
    *least += sizes[item];
    owners[item] = static_cast<index_t>(least - load.begin());
  }
  return owners;
}

}  // namespace shardalg
