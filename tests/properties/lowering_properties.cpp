// Laws of lowering on random same-mesh layouts (explicit shard orders, or PyTorch's strided
// labels of them): every collective program, run step by step on the ranks' tiles, gives what
// the direct plan gives; collectives are chosen only when they move
// no more bytes than point-to-point.
#include "generators.hpp"
#include "../source_tiles.hpp"

using namespace shardalg;
using namespace shardalg::testing;

namespace {

DeviceMesh gen_lowering_mesh() {
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

// The layout as PyTorch labels it: the order's placements (_StridedShard where a mesh dim splits
// a dim after others), Replicate and Partial dims kept. Over uneven extents a label may hold
// other elements than the order it names.
MeshLayout as_label(const MeshLayout& ordered) {
  std::vector<Placement> placements = placements_from_shard_order(ordered.mesh().shape(), *ordered.application_order());
  for (std::size_t m = 0; m < placements.size(); ++m)
    if (!ordered.placements()[m].splits_tensor()) placements[m] = ordered.placements()[m];
  return MeshLayout(ordered.mesh(), placements, ordered.global_shape());
}

}  // namespace

TEST_CASE("properties of lowering") {
  SHARDALG_PROPERTY("a lowered program gives every rank what the direct plan gives it", [] {
    DeviceMesh mesh = gen_lowering_mesh();
    Dims shape(*rc::gen::container<std::vector<index_t>>(*rc::gen::inRange<std::size_t>(0, 4), rc::gen::inRange<index_t>(0, 12)));  // 7 rows on (3, 2): a label unlike its order
    std::optional<ReduceOp> op;
    if (*rc::gen::arbitrary<bool>()) op = *rc::gen::element(ReduceOp::sum, ReduceOp::max, ReduceOp::min);
    MeshLayout src_ordered = gen_ordered_layout(mesh, shape, op), dst_ordered = gen_ordered_layout(mesh, shape, std::nullopt);
    bool src_label = *rc::gen::arbitrary<bool>(), dst_label = *rc::gen::arbitrary<bool>();
    MeshLayout src = src_label ? as_label(src_ordered) : src_ordered, dst = dst_label ? as_label(dst_ordered) : dst_ordered;
    auto program = search_collectives(src, dst, 4);
    // Only a label that holds other elements than its order has no program.
    bool src_differs = src_label && !compare_layouts(src, src_ordered).equivalent();
    bool dst_differs = dst_label && !compare_layouts(dst, dst_ordered).equivalent();
    RC_ASSERT(program.has_value() == !(src_differs || dst_differs));
    if (!program) return;
    RC_ASSERT(program->states.size() == program->steps.size() + 1);
    auto sources = partial_source_tiles<std::int64_t>(src);
    ReshardPlan plan(src, dst);
    auto expected = simulate(plan, plan.all_transfers(), sources);
    RC_ASSERT(run_collective_program(*program, sources) == expected);
  });

  SHARDALG_PROPERTY("collectives are chosen only when they move no more bytes and cost no more than point-to-point", [] {
    DeviceMesh mesh = gen_lowering_mesh();
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
