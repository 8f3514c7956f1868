// Laws of lowering on random same-mesh layouts: every collective program, run step by step on
// the ranks' tiles, gives what the direct plan gives; collectives are chosen only when they move
// no more bytes than point-to-point.
#include "generators.hpp"
#include "../source_tiles.hpp"

using namespace shardalg;
using namespace shardalg::testing;

namespace {

DeviceMesh gen_small_mesh() {
  auto ndim = *rc::gen::inRange<std::size_t>(1, 4);
  auto sizes = *rc::gen::container<std::vector<index_t>>(ndim, rc::gen::inRange<index_t>(1, 4));
  std::vector<std::string> names;
  for (std::size_t d = 0; d < ndim; ++d) names.push_back(std::string(1, static_cast<char>('a' + d)));
  Dims shape(sizes);
  std::vector<index_t> devices(static_cast<std::size_t>(volume(shape)));
  for (std::size_t i = 0; i < devices.size(); ++i) devices[i] = static_cast<index_t>(i);
  return DeviceMesh(names, shape, *gen_shuffled(devices));
}

// Replicate / Shard (and Partial with `op` when given) placements applied in a random shard order.
MeshLayout gen_ordered_layout(const DeviceMesh& mesh, const Dims& shape, std::optional<ReduceOp> op) {
  std::vector<Placement> placements;
  for (std::size_t m = 0; m < mesh.ndim(); ++m) {
    int kind = *rc::gen::inRange(0, op ? 3 : 2);
    if (kind == 0 || (kind == 1 && shape.empty())) placements.push_back(Placement::replicate());  // a scalar has no dim to shard
    else if (kind == 1) placements.push_back(Placement::shard(*rc::gen::inRange<index_t>(0, static_cast<index_t>(shape.size()))));
    else placements.push_back(Placement::partial(*op));
  }
  ShardOrder order = default_shard_order(placements);
  for (ShardOrderEntry& entry : order) entry.mesh_dims = *gen_shuffled(entry.mesh_dims);
  return MeshLayout(mesh, placements, shape, order);
}

}  // namespace

TEST_CASE("properties of lowering") {
  SHARDALG_PROPERTY("a lowered program gives every rank what the direct plan gives it", [] {
    DeviceMesh mesh = gen_small_mesh();
    Dims shape(*rc::gen::container<std::vector<index_t>>(*rc::gen::inRange<std::size_t>(0, 4), rc::gen::inRange<index_t>(0, 7)));
    std::optional<ReduceOp> op;
    if (*rc::gen::arbitrary<bool>()) op = *rc::gen::element(ReduceOp::sum, ReduceOp::max, ReduceOp::min);
    MeshLayout src = gen_ordered_layout(mesh, shape, op), dst = gen_ordered_layout(mesh, shape, std::nullopt);
    auto program = search_collectives(src, dst, 4);
    RC_ASSERT(program.has_value());
    RC_ASSERT(program->states.size() == program->steps.size() + 1);
    auto sources = partial_source_tiles<std::int64_t>(src);
    ReshardPlan plan(src, dst);
    auto expected = simulate(plan, plan.all_transfers(), sources);
    RC_ASSERT(run_collective_program(*program, sources) == expected);
  });

  SHARDALG_PROPERTY("collectives are chosen only when they move no more bytes and cost no more than point-to-point", [] {
    DeviceMesh mesh = gen_small_mesh();
    Dims shape(*rc::gen::container<std::vector<index_t>>(*rc::gen::inRange<std::size_t>(0, 3), rc::gen::inRange<index_t>(0, 9)));
    MeshLayout src = gen_ordered_layout(mesh, shape, ReduceOp::sum), dst = gen_ordered_layout(mesh, shape, std::nullopt);
    LoweredProgram lowered = lower_reshard(src, dst, 2);
    RC_ASSERT(lowered.collectives.has_value());
    if (lowered.choice == LoweringChoice::collectives) {
      RC_ASSERT(lowered.collectives->bytes <= lowered.p2p_bytes);
      RC_ASSERT(lowered.collectives->cost_us <= lowered.p2p_us);
    } else {
      RC_ASSERT(lowered.collectives->bytes > lowered.p2p_bytes || lowered.collectives->cost_us > lowered.p2p_us);
    }
  });
}
