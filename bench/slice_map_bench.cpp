// Slice-map speed: one rank's tile (what a framework computes at start-up on every rank) and all
// ranks' (what a checkpoint planner or a visualizer computes), on meshes of 1-4 dims up to 16,384
// ranks. Tensor: Llama-3-405B's MLP weight gate_proj [53248, 16384] (the model zoo) unless noted.
#include <benchmark/benchmark.h>

#include "shardalg/shardalg.hpp"

using namespace shardalg;

namespace {

const Dims kGateProj405B{53248, 16384};

// A mesh of `ranks` ranks with `ndim` dims: tp=8 innermost, the rest split as evenly as powers of 2 allow.
DeviceMesh make_mesh(index_t ranks, int ndim) {
  std::vector<std::string> names;
  Dims shape;
  index_t inner = ndim >= 2 ? 8 : ranks;
  index_t outer = ranks / inner;
  for (int d = 0; d < ndim - 1; ++d) {
    index_t size = 1;
    int remaining = ndim - 1 - d;
    while (size * size < outer && remaining > 1 && outer % (size * 2) == 0) size *= 2;
    if (remaining == 1) size = outer;
    names.push_back(std::string(1, static_cast<char>('a' + d)));
    shape.push_back(size);
    outer /= size;
  }
  names.push_back("tp");
  shape.push_back(inner);
  return DeviceMesh(names, shape);
}

// Shard-only placements: every mesh dim but the last shards dim 0, the last (tp) shards dim 1.
std::vector<Placement> shard_only(std::size_t ndim) {
  std::vector<Placement> placements(ndim, Placement::shard(0));
  placements.back() = Placement::shard(1);
  return placements;
}

// Times `query(layout, rank)` over ranks spread across the mesh.
template <class Query>
void time_one_rank(benchmark::State& state, const MeshLayout& layout, Query query) {
  index_t ranks = layout.mesh().size();
  index_t rank = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(query(layout, rank));
    rank = (rank + 7919) % ranks;
  }
  state.SetLabel(layout.mesh().spec_string());
}

void BM_OneRankTile_ShardOnly3D(benchmark::State& state) {
  time_one_rank(state, MeshLayout(make_mesh(state.range(0), 3), shard_only(3), kGateProj405B),
                [](const MeshLayout& layout, index_t rank) { return layout.tile(rank); });
}
BENCHMARK(BM_OneRankTile_ShardOnly3D)->RangeMultiplier(4)->Range(64, 16384);

void BM_OneRankShardInfo_ShardOnly3D(benchmark::State& state) {
  time_one_rank(state, MeshLayout(make_mesh(state.range(0), 3), shard_only(3), kGateProj405B),
                [](const MeshLayout& layout, index_t rank) { return layout.shard_info(rank); });
}
BENCHMARK(BM_OneRankShardInfo_ShardOnly3D)->RangeMultiplier(4)->Range(64, 16384);

// FSDP2 over TP: (_S(0, 8), S(0)) on (dp, tp=8), gate_proj sharded column-parallel.
void BM_OneRankTile_FsdpTpStrided(benchmark::State& state) {
  DeviceMesh mesh({"dp", "tp"}, Dims{state.range(0) / 8, 8});
  time_one_rank(state, MeshLayout(mesh, {Placement::strided_shard(0, 8), Placement::shard(0)}, kGateProj405B),
                [](const MeshLayout& layout, index_t rank) { return layout.tile(rank); });
}
BENCHMARK(BM_OneRankTile_FsdpTpStrided)->RangeMultiplier(4)->Range(64, 16384);

// All ranks' slice map; items/s is ranks/s, so a flat rate means time linear in ranks.
void BM_AllRanksSliceMap(benchmark::State& state) {
  index_t ranks = state.range(0);
  int ndim = static_cast<int>(state.range(1));
  MeshLayout layout(make_mesh(ranks, ndim), shard_only(static_cast<std::size_t>(ndim)), kGateProj405B);
  for (auto _ : state) benchmark::DoNotOptimize(SliceMap(layout));
  state.SetItemsProcessed(state.iterations() * ranks);
  state.SetLabel(layout.mesh().spec_string());
}
BENCHMARK(BM_AllRanksSliceMap)->ArgsProduct({{64, 256, 1024, 4096, 16384}, {1, 2, 3, 4}})->Unit(benchmark::kMicrosecond);

// The inverse query on the largest mesh: which of 16,384 ranks hold a 1024 x 1024 block.
void BM_RanksHoldingBox(benchmark::State& state) {
  MeshLayout layout(make_mesh(16384, 4), {Placement::replicate(), Placement::shard(0), Placement::shard(0), Placement::shard(1)},
                    kGateProj405B);
  Box box(Dims{20000, 3000}, Dims{1024, 1024});
  for (auto _ : state) benchmark::DoNotOptimize(layout.ranks_holding(box));
  state.SetLabel(layout.mesh().spec_string() + " R,S(0),S(0),S(1)");
}
BENCHMARK(BM_RanksHoldingBox)->Unit(benchmark::kMicrosecond);

}  // namespace
