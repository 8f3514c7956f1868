// Resharding-plan speed on Llama-3-405B shapes (MODELS.md): one rank's plan for the whole model
// (what each process computes when a job restarts at another topology), the global plan of one
// large tensor as the world grows, and verification against planning.
#include <benchmark/benchmark.h>

#include "shardalg/shardalg.hpp"

using namespace shardalg;

namespace {

const ModelSpec& llama405b() {
  static const ModelSpec model = model_from_zoo("llama3-405b");
  return model;
}

// FSDP2 (Shard(0) over dp) of every tensor.
std::vector<MeshLayout> fsdp(index_t dp) {
  DeviceMesh mesh({"dp"}, Dims{dp});
  std::vector<MeshLayout> layouts;
  for (const ModelTensor& t : llama405b().tensors) layouts.emplace_back(mesh, std::vector<Placement>{Placement::shard(0)}, t.shape);
  return layouts;
}

// FSDP2 over Megatron-style TP: column/vocab-parallel (_S(0,tp), S(0)), row-parallel (S(0), S(1)),
// replicated tensors (S(0), R).
std::vector<MeshLayout> fsdp_tp(index_t dp, index_t tp) {
  DeviceMesh mesh({"dp", "tp"}, Dims{dp, tp});
  std::vector<MeshLayout> layouts;
  for (const ModelTensor& t : llama405b().tensors) {
    std::vector<Placement> p;
    switch (t.role) {
      case TensorRole::column_parallel:
      case TensorRole::vocab_parallel: p = {Placement::strided_shard(0, tp), Placement::shard(0)}; break;
      case TensorRole::row_parallel: p = {Placement::shard(0), Placement::shard(1)}; break;
      default: p = {Placement::shard(0), Placement::replicate()}; break;
    }
    layouts.emplace_back(mesh, p, t.shape);
  }
  return layouts;
}

void plan_one_rank(benchmark::State& state, const std::vector<MeshLayout>& src, const std::vector<MeshLayout>& dst, index_t ranks) {
  std::vector<ReshardPlan> plans;
  for (std::size_t i = 0; i < src.size(); ++i) plans.emplace_back(src[i], dst[i]);
  index_t rank = 0;
  std::size_t transfers = 0;
  for (auto _ : state) {
    transfers = 0;
    for (const ReshardPlan& plan : plans) transfers += plan.transfers_to(rank).size();
    rank = (rank + 97) % ranks;
  }
  state.counters["transfers"] = static_cast<double>(transfers);
  state.counters["tensors"] = static_cast<double>(plans.size());
}

// (a) FSDP 512 -> FSDP 1024: one destination rank's receives for all 1,137 tensors.
void BM_OneRankModelPlan_Fsdp512To1024(benchmark::State& state) { plan_one_rank(state, fsdp(512), fsdp(1024), 1024); }
BENCHMARK(BM_OneRankModelPlan_Fsdp512To1024)->Unit(benchmark::kMillisecond);

// (b) FSDP2+TP dp64 x tp8 -> dp128 x tp4.
void BM_OneRankModelPlan_FsdpTp64x8To128x4(benchmark::State& state) { plan_one_rank(state, fsdp_tp(64, 8), fsdp_tp(128, 4), 512); }
BENCHMARK(BM_OneRankModelPlan_FsdpTp64x8To128x4)->Unit(benchmark::kMillisecond);

// The global plan of gate_proj [53248, 16384] from FSDP N to FSDP+TP (N/4 x 4), over world sizes.
void BM_GlobalPlanOneTensor(benchmark::State& state) {
  index_t n = state.range(0);
  Dims shape{53248, 16384};
  ReshardPlan plan(MeshLayout(DeviceMesh({"dp"}, Dims{n}), {Placement::shard(0)}, shape),
                   MeshLayout(DeviceMesh({"dp", "tp"}, Dims{n / 4, 4}), {Placement::strided_shard(0, 4), Placement::shard(0)}, shape));
  std::size_t transfers = 0;
  for (auto _ : state) {
    auto all = plan.all_transfers();
    transfers = all.size();
    benchmark::DoNotOptimize(all);
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["transfers"] = static_cast<double>(transfers);
}
BENCHMARK(BM_GlobalPlanOneTensor)->RangeMultiplier(4)->Range(64, 16384)->Unit(benchmark::kMillisecond);

// Verification of the same global plan (target: no slower than planning).
void BM_VerifyOneTensor(benchmark::State& state) {
  index_t n = state.range(0);
  Dims shape{53248, 16384};
  ReshardPlan plan(MeshLayout(DeviceMesh({"dp"}, Dims{n}), {Placement::shard(0)}, shape),
                   MeshLayout(DeviceMesh({"dp", "tp"}, Dims{n / 4, 4}), {Placement::strided_shard(0, 4), Placement::shard(0)}, shape));
  auto all = plan.all_transfers();
  for (auto _ : state) verify_plan(plan, all);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_VerifyOneTensor)->RangeMultiplier(4)->Range(64, 16384)->Unit(benchmark::kMillisecond);

}  // namespace
