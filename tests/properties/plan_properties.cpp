// Laws of reshard plans on random layouts of random meshes (different sizes, rank subsets and
// permutations on the two sides; mesh and flat layouts), executed in the host simulator.
#include "generators.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <tuple>

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

// A flat layout (ZeRO-3, ZeRO-1/2 or Megatron over a random mesh dim) holding the tensor next to
// another one, so that the tensor sits at a non-trivial offset of a shared partition. Flat
// schemes need every flattened tile non-empty: tensors without elements stay mesh layouts, and
// placements leaving some rank an empty tile become Replicate.
TensorLayout gen_flat_layout(const Dims& shape) {
  MeshLayout placed = gen_plain_layout(shape);
  if (volume(shape) == 0) return placed;
  const DeviceMesh& mesh = placed.mesh();
  std::size_t flat_dim = static_cast<std::size_t>(*rc::gen::inRange<int>(0, static_cast<int>(mesh.ndim())));
  std::vector<Placement> placements = placed.placements();
  placements[flat_dim] = Placement::replicate();
  MeshLayout tp(mesh, placements, shape);
  for (index_t rank : mesh.devices())
    if (tp.tile(rank).empty()) placements.assign(mesh.ndim(), Placement::replicate());
  Dims other_shape = *gen_shape();
  for (index_t& extent : other_shape) extent = std::max<index_t>(extent, 1);
  std::vector<Placement> other(mesh.ndim(), Placement::replicate());
  FlatSchemeOptions options{*rc::gen::element(FlatScheme::zero3, FlatScheme::zero12, FlatScheme::megatron)};
  options.alignment_factor = *rc::gen::element<index_t>(1, 2, 4);
  options.megatron.bucket_size = *rc::gen::element<std::optional<index_t>>(std::nullopt, 16, 100);
  bool other_first = *rc::gen::arbitrary<bool>();
  std::vector<NamedMeshLayout> tensors{{"t", MeshLayout(mesh, placements, shape)}, {"other", MeshLayout(mesh, other, other_shape)}};
  if (other_first) std::swap(tensors[0], tensors[1]);
  auto flat = std::make_shared<const ComposedFlatLayout>(tensors, mesh.name(flat_dim), options);
  return TensorLayout(flat, other_first ? 1 : 0);
}

TensorLayout gen_any_layout(const Dims& shape) {
  if (*rc::gen::arbitrary<bool>()) return gen_flat_layout(shape);
  return gen_plain_layout(shape);
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
    TensorLayout src = gen_any_layout(shape), dst = gen_any_layout(shape);
    ReshardPlan plan(src, dst);
    auto data = iota_data(shape);
    auto out = simulate(plan, plan.all_transfers(), scatter_to_ranks(src, data));
    RC_ASSERT(out == scatter_to_ranks(dst, data));
  });

  SHARDALG_PROPERTY("A -> B -> A is the identity", [] {
    Dims shape = *gen_shape();
    TensorLayout a = gen_any_layout(shape), b = gen_any_layout(shape);
    ReshardPlan there(a, b), back(b, a);
    auto start = scatter_to_ranks(a, iota_data(shape));
    auto middle = simulate(there, there.all_transfers(), start);
    RC_ASSERT(simulate(back, back.all_transfers(), middle) == start);
  });

  SHARDALG_PROPERTY("with unreplicated sources, bytes between distinct ranks equal the lower bound", [] {
    Dims shape = *gen_shape();
    TensorLayout src = gen_any_layout(shape), dst = gen_any_layout(shape);
    RC_PRE(src.single_holder());
    ReshardPlan plan(src, dst);
    index_t moved = 0, bound = 0;
    for (const Transfer& t : plan.all_transfers())
      if (t.src_rank != t.dst_rank) moved += t.global.volume();
    for (index_t rank : dst.mesh().devices()) bound += plan.lower_bound_elements(rank);
    RC_ASSERT(moved == bound);
  });

  SHARDALG_PROPERTY("every plan passes verification, and a rank's sends are its part of the plan", [] {
    Dims shape = *gen_shape();
    TensorLayout src = gen_any_layout(shape), dst = gen_any_layout(shape);
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

  SHARDALG_PROPERTY("the whole plan is every destination rank's part (all_transfers' indexed path agrees with transfers_to)", [] {
    Dims shape = *gen_shape();
    TensorLayout src = gen_any_layout(shape), dst = gen_any_layout(shape);
    ReshardPlan plan(src, dst);
    using Key = std::tuple<index_t, index_t, Dims, Dims, Dims, Dims, index_t>;
    auto keys = [](const TransferList& list) {
      std::vector<Key> out;
      for (const Transfer& t : list) out.emplace_back(t.src_rank, t.dst_rank, t.global.offset, t.global.shape, t.src_local, t.dst_local, t.contributors);
      std::sort(out.begin(), out.end(), [](const Key& a, const Key& b) {
        auto flat = [](const Key& k) {
          std::vector<index_t> v{std::get<0>(k), std::get<1>(k), std::get<6>(k)};
          for (const Dims* dims : {&std::get<2>(k), &std::get<3>(k), &std::get<4>(k), &std::get<5>(k)}) v.insert(v.end(), dims->begin(), dims->end());
          return v;
        };
        return flat(a) < flat(b);
      });
      return out;
    };
    TransferList parts;
    for (index_t rank : dst.mesh().devices()) parts.append(plan.transfers_to(rank), 0);
    RC_ASSERT(keys(plan.all_transfers()) == keys(parts));
  });

  SHARDALG_PROPERTY("a replicated source sends from the destination itself if it is a replica, else from replica (position mod count)", [] {
    Dims shape = *gen_shape();
    MeshLayout src = gen_plain_layout(shape), dst = gen_plain_layout(shape);
    ReshardPlan plan(src, dst);
    // The rule stated over all source ranks: the replicas of a sender are the ranks holding its
    // tile, in source mesh order.
    for (const Transfer& t : plan.all_transfers()) {
      std::vector<index_t> held = tile_key(src.tile(t.src_rank)), replicas;
      for (index_t rank : src.mesh().devices())
        if (tile_key(src.tile(rank)) == held) replicas.push_back(rank);
      bool own = std::find(replicas.begin(), replicas.end(), t.dst_rank) != replicas.end();
      index_t position = *dst.mesh().position_of(t.dst_rank);
      index_t expected = own ? t.dst_rank : replicas[static_cast<std::size_t>(position % static_cast<index_t>(replicas.size()))];
      RC_ASSERT(t.src_rank == expected);
    }
  });

  SHARDALG_PROPERTY("every element a destination holds is written once, from a source holding it", [] {
    Dims shape = *gen_shape();
    TensorLayout src = gen_any_layout(shape), dst = gen_any_layout(shape);
    ReshardPlan plan(src, dst);
    // Count writes per (destination rank, global element); each source must hold what it sends.
    std::map<std::pair<index_t, index_t>, int> writes;
    for (const Transfer& t : plan.all_transfers())
      for (index_t i = 0; i < t.global.volume(); ++i) {
        Dims point = row_major_coordinate(t.global.shape, i);
        for (std::size_t d = 0; d < point.size(); ++d) point[d] += t.global.offset[d];
        bool held = false;
        for (const Piece& piece : src.pieces(t.src_rank)) held = held || piece.global.contains_point(point);
        RC_ASSERT(held);
        ++writes[{t.dst_rank, row_major_position(shape, point)}];
      }
    index_t expected = 0;
    for (index_t rank : dst.mesh().devices()) expected += dst.held_elements(rank);
    RC_ASSERT(static_cast<index_t>(writes.size()) == expected);
    for (const auto& [key, count] : writes) RC_ASSERT(count == 1);
  });
}

TEST_CASE("properties of checkpoint read items") {
  SHARDALG_PROPERTY("the index gives DCP's pairwise read items, for layouts and for arbitrary chunks", [] {
    Dims shape = *gen_shape();
    std::vector<ChunkMeta> saved = saved_chunks(gen_any_layout(shape));
    // Arbitrary extra chunks: overlapping, zero-size, outside the tensor.
    auto gen_chunk = [&] {
      Dims offsets, sizes;
      for (std::size_t d = 0; d < shape.size(); ++d) {
        offsets.push_back(*rc::gen::inRange<index_t>(0, shape[d] + 3));
        sizes.push_back(*rc::gen::inRange<index_t>(0, 6));
      }
      return ChunkMeta{offsets, sizes};
    };
    int extra = *rc::gen::inRange(0, 4);
    for (int i = 0; i < extra; ++i) saved.push_back(gen_chunk());
    TensorLayout load = gen_any_layout(shape);
    CheckpointIndex index(saved);
    for (index_t rank : load.mesh().devices()) {
      std::vector<ChunkMeta> wanted = wanted_chunks(load, rank);
      wanted.push_back(gen_chunk());
      RC_ASSERT(index.read_items(wanted) == read_items_pairwise(saved, wanted));
    }
  });
}

TEST_CASE("properties of whole-model plans") {
  // Small models with repeated shapes (so layers share plans) under random recipes.
  auto gen_model = [] {
    ModelSpec model{"random", {}};
    int count = *rc::gen::inRange(1, 7);
    for (int i = 0; i < count; ++i) {
      TensorRole role = *rc::gen::element(TensorRole::column_parallel, TensorRole::row_parallel, TensorRole::replicated);
      Dims shape = role == TensorRole::replicated ? Dims{*rc::gen::inRange<index_t>(2, 10)}
                                                  : Dims{*rc::gen::inRange<index_t>(2, 6), *rc::gen::inRange<index_t>(2, 6)};
      std::string name = std::to_string(i);  // (GCC 12 warns falsely on "t" + std::to_string(i))
      model.tensors.push_back(ModelTensor{name + "t", shape, role});
      if (*rc::gen::arbitrary<bool>()) model.tensors.push_back(ModelTensor{name + "r", shape, role});
    }
    return model;
  };
  auto gen_recipe = [] {
    std::string dp = std::to_string(*rc::gen::inRange(1, 5)), tp = std::to_string(*rc::gen::inRange(1, 3));
    std::string kind = *rc::gen::element<std::string>("replicated", "fsdp", "fsdp-tp", "zero3", "zero3+tp", "zero1", "megatron-distopt");
    if (kind == "replicated") return kind + " ranks=" + dp;
    if (kind == "fsdp" || kind == "zero3") return kind + " dp=" + dp;
    if (kind == "zero3+tp") return "zero3 dp=" + dp + ",tp=" + tp;
    return kind + " dp=" + dp + ",tp=" + tp;
  };

  SHARDALG_PROPERTY("a model plan is the union of its tensors' plans, and moves every element to its place", [&] {
    ModelSpec model = gen_model();
    ModelLayout src = layout_model(model, gen_recipe()), dst = layout_model(model, gen_recipe());
    ModelReshardPlan plan(src, dst);
    auto all = plan.all_transfers();
    std::size_t at = 0;
    for (std::size_t t = 0; t < plan.size(); ++t)
      for (const Transfer& expected : plan.tensor_plan(t).all_transfers()) {
        RC_ASSERT(at < all.size());
        const Transfer& got = all[at++];
        RC_ASSERT(got.tensor == static_cast<index_t>(t));
        RC_ASSERT(got.src_rank == expected.src_rank && got.dst_rank == expected.dst_rank && got.global == expected.global);
        RC_ASSERT(got.src_local == expected.src_local && got.dst_local == expected.dst_local);
      }
    RC_ASSERT(at == all.size());
    auto globals = numbered_tensors(src);
    RC_ASSERT(gather_model(dst, simulate_model(plan, all, scatter_model(src, globals))) == globals);
  });

  SHARDALG_PROPERTY("counting rank by rank gives the totals of the whole transfer list, and each rank's part verifies", [&] {
    ModelSpec model = gen_model();
    ModelReshardPlan plan(layout_model(model, gen_recipe()), layout_model(model, gen_recipe()));
    CostModel links;
    links.ranks_per_node = *rc::gen::inRange(1, 4);
    CommunicationVolume whole(plan, plan.all_transfers(), links), streamed = CommunicationVolume::of_plan(plan, links);
    RC_ASSERT(whole.ranks() == streamed.ranks());
    RC_ASSERT(whole.transfers() == streamed.transfers());
    RC_ASSERT(whole.messages() == streamed.messages());
    RC_ASSERT(whole.max_peers() == streamed.max_peers());
    RC_ASSERT(whole.kept() == streamed.kept());
    RC_ASSERT(whole.sent() == streamed.sent());
    RC_ASSERT(whole.received() == streamed.received());
    RC_ASSERT(whole.lower_bound_total() == streamed.lower_bound_total());
    RC_ASSERT(std::abs(whole.point_to_point_us() - streamed.point_to_point_us()) <= 1e-9 * (1 + whole.point_to_point_us()));
    // A part missing a transfer, or with one twice, fails its rank's verification.
    for (index_t rank : plan.destination().ranks()) {
      TransferList part = plan.transfers_to(rank);
      verify_destination(plan, rank, part);
      if (part.size() == 0) continue;
      std::size_t victim = static_cast<std::size_t>(*rc::gen::inRange<std::size_t>(0, part.size()));
      TransferList missing, doubled = part;
      for (std::size_t i = 0; i < part.size(); ++i)
        if (i != victim) missing.push_back(part, i);
      doubled.push_back(part, victim);
      RC_ASSERT_THROWS_AS(verify_destination(plan, rank, missing), Error);
      RC_ASSERT_THROWS_AS(verify_destination(plan, rank, doubled), Error);
    }
  });
}
