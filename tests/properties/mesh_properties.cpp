// Laws of device meshes on random shapes and rank assignments.
#include "generators.hpp"

#include <algorithm>

using namespace shardalg;
using namespace shardalg::testing;

TEST_CASE("properties of device meshes") {
  SHARDALG_PROPERTY("the groups of a dim partition the ranks, and each member's group is its own group", [] {
    DeviceMesh mesh = *gen_mesh();
    for (std::size_t dim = 0; dim < mesh.ndim(); ++dim) {
      std::vector<index_t> seen;
      for (const auto& group : mesh.groups(dim)) {
        RC_ASSERT(static_cast<index_t>(group.size()) == mesh.size(dim));
        for (index_t rank : group) {
          RC_ASSERT(mesh.group_of(dim, rank) == group);
          seen.push_back(rank);
        }
      }
      std::sort(seen.begin(), seen.end());
      std::vector<index_t> all = mesh.devices();
      std::sort(all.begin(), all.end());
      RC_ASSERT(seen == all);
    }
  });

  SHARDALG_PROPERTY("coordinate_of and rank_at are inverse; flatten then unflatten restores the mesh", [] {
    DeviceMesh mesh = *gen_mesh();
    for (index_t rank : mesh.devices()) RC_ASSERT(mesh.rank_at(*mesh.coordinate_of(rank)) == rank);
    std::size_t first = *rc::gen::inRange<std::size_t>(0, mesh.ndim());
    std::size_t last = *rc::gen::inRange<std::size_t>(first, mesh.ndim());
    std::vector<std::string> names(mesh.names().begin() + static_cast<std::ptrdiff_t>(first),
                                   mesh.names().begin() + static_cast<std::ptrdiff_t>(last + 1));
    Dims sizes;
    for (std::size_t d = first; d <= last; ++d) sizes.push_back(mesh.size(d));
    DeviceMesh flat = mesh.flatten(names, "merged");
    RC_ASSERT(flat.unflatten("merged", sizes, names) == mesh);
  });
}
