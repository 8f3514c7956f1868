// Laws of reshard plans on random layouts of random meshes (different sizes, rank subsets and
// permutations on the two sides), executed in the host simulator.
#include "generators.hpp"

#include <numeric>

using namespace shardalg;
using namespace shardalg::testing;

namespace {

// A layout without Partial placements of `shape` on a random mesh whose ranks are a random
// subset of 0..15.
MeshLayout gen_plain_layout(const Dims& shape) {
  DeviceMesh base = *gen_mesh();
  while (base.size() > 16) base = *gen_mesh();
  std::vector<index_t> pool(16);
  std::iota(pool.begin(), pool.end(), index_t{0});
  pool = *gen_shuffled(pool);
  pool.resize(static_cast<std::size_t>(base.size()));
  DeviceMesh mesh(base.names(), base.shape(), pool);
  std::vector<Placement> placements;
  for (std::size_t m = 0; m < mesh.ndim(); ++m) {
    Placement p = *gen_placement(shape.size());
    placements.push_back(p.is_partial() ? Placement::replicate() : p);
  }
  return MeshLayout(mesh, placements, shape);
}

std::vector<long> iota_data(const Dims& shape) {
  std::vector<long> data(static_cast<std::size_t>(volume(shape)));
  std::iota(data.begin(), data.end(), 1L);
  return data;
}

}  // namespace

TEST_CASE("properties of reshard plans") {
  SHARDALG_PROPERTY("scatter by the source, reshard, gather by the destination gives back the tensor", [] {
    Dims shape = *gen_shape();
    MeshLayout src = gen_plain_layout(shape), dst = gen_plain_layout(shape);
    ReshardPlan plan(src, dst);
    auto data = iota_data(shape);
    auto out = simulate(plan, plan.all_transfers(), scatter_to_ranks(src, data));
    RC_ASSERT(out == scatter_to_ranks(dst, data));
  });

  SHARDALG_PROPERTY("A -> B -> A is the identity", [] {
    Dims shape = *gen_shape();
    MeshLayout a = gen_plain_layout(shape), b = gen_plain_layout(shape);
    ReshardPlan there(a, b), back(b, a);
    auto start = scatter_to_ranks(a, iota_data(shape));
    auto middle = simulate(there, there.all_transfers(), start);
    RC_ASSERT(simulate(back, back.all_transfers(), middle) == start);
  });

  SHARDALG_PROPERTY("with unreplicated sources, bytes between distinct ranks equal the lower bound", [] {
    Dims shape = *gen_shape();
    MeshLayout src = gen_plain_layout(shape), dst = gen_plain_layout(shape);
    RC_PRE(src.replication_factor() == 1);
    ReshardPlan plan(src, dst);
    index_t moved = 0, bound = 0;
    for (const Transfer& t : plan.all_transfers())
      if (t.src_rank != t.dst_rank) moved += t.global.volume();
    for (index_t rank : dst.mesh().devices()) bound += plan.lower_bound_elements(rank);
    RC_ASSERT(moved == bound);
  });

  SHARDALG_PROPERTY("every plan passes verification, and a rank's sends are its part of the plan", [] {
    Dims shape = *gen_shape();
    MeshLayout src = gen_plain_layout(shape), dst = gen_plain_layout(shape);
    ReshardPlan plan(src, dst);
    auto all = plan.all_transfers();
    verify_plan(plan, all);
    for (index_t rank : src.mesh().devices()) {
      index_t from_plan = 0, from_query = 0;
      for (const Transfer& t : all)
        if (t.src_rank == rank) from_plan += t.global.volume();
      for (const Transfer& t : plan.transfers_from(rank)) from_query += t.global.volume();
      RC_ASSERT(from_plan == from_query);
    }
  });
}
