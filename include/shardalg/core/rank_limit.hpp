// The most ranks shardalg lists one by one: a mesh's devices, a flat partition's group, the
// process groups of a convention.
#pragma once

#include "shardalg/core/checked.hpp"

namespace shardalg {

// 2^24 = 16,777,216 ranks, far beyond any cluster: a malformed size (a typo, a wrapped value) is
// then an error naming it, not an allocation that exhausts memory.
inline constexpr index_t max_ranks = index_t{1} << 24;

}  // namespace shardalg
