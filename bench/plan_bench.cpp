// Resharding-plan speed on real model shapes (the model zoo), through the layout recipes:
//   (a) Llama-3-405B  FSDP 512 -> FSDP 1024
//   (b) Llama-3-405B  FSDP2+TP dp64 x tp8 -> dp128 x tp4
//   (c) Llama-3-405B  ZeRO-3 1024 -> 768
//   (d) DeepSeek-V3   EP 64 -> EP 32 (256 ranks; experts FSDP over the expert-replica group)
// One rank's plan for the whole model (what each process computes when a job restarts at another
// topology), scaling of that over world sizes 64 ... 16,384, the global plan of the whole model,
// and its verification; one tensor across meshes, planned and verified; planning time against
// the number of tensors (20,000 to Megatron's distributed optimizer).
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "shardalg/shardalg.hpp"

using namespace shardalg;

namespace {

const ModelSpec& model(const std::string& name) {
  static std::map<std::string, ModelSpec> models;
  auto it = models.find(name);
  if (it == models.end()) it = models.emplace(name, model_from_zoo(name)).first;
  return it->second;
}

struct Scenario {
  std::string model, from, to;
};

// The scenario at a world size `n` (where it scales with the world).
Scenario scenario(int which, index_t n) {
  std::string dp = std::to_string(n);
  switch (which) {
    case 0: return {"llama3-405b", "fsdp dp=" + std::to_string(n / 2), "fsdp dp=" + dp};
    case 1: return {"llama3-405b", "fsdp-tp dp=" + std::to_string(n / 8) + ",tp=8", "fsdp-tp dp=" + std::to_string(n / 4) + ",tp=4"};
    case 2: return {"llama3-405b", "zero3 dp=" + dp, "zero3 dp=" + std::to_string(n * 3 / 4)};
    default: return {"deepseek-v3", "ep ep=64,dp=" + dp, "ep ep=32,dp=" + dp};
  }
}

const ModelReshardPlan& plan_of(int which, index_t n) {
  static std::map<std::pair<int, index_t>, std::unique_ptr<ModelReshardPlan>> cache;
  auto& slot = cache[{which, n}];
  if (!slot) {
    Scenario s = scenario(which, n);
    slot = std::make_unique<ModelReshardPlan>(layout_model(model(s.model), s.from), layout_model(model(s.model), s.to));
  }
  return *slot;
}

// One destination rank's receives for every tensor of the model; ranks vary between iterations.
void BM_OneRankModelPlan(benchmark::State& state) {
  int which = static_cast<int>(state.range(0));
  index_t n = state.range(1);
  const ModelReshardPlan& plan = plan_of(which, n);
  const auto& ranks = plan.destination().ranks();
  std::size_t next = 0, transfers = 0;
  for (auto _ : state) {
    auto part = plan.transfers_to(ranks[next]);
    transfers = part.size();
    benchmark::DoNotOptimize(part);
    next = (next + 97) % ranks.size();
  }
  state.counters["transfers"] = static_cast<double>(transfers);
  state.counters["tensors"] = static_cast<double>(plan.size());
}
// The four seed scenarios at their stated sizes.
BENCHMARK(BM_OneRankModelPlan)->Args({0, 1024})->Args({1, 512})->Args({2, 1024})->Args({3, 256})->Unit(benchmark::kMillisecond);

// Scaling: one rank's plan as the world grows (a, c: 64 ... 16,384 ranks).
BENCHMARK(BM_OneRankModelPlan)
    ->ArgsProduct({{0, 2}, {64, 256, 1024, 4096, 16384}})
    ->Unit(benchmark::kMillisecond);

// The global plan of the whole model: every destination rank's part (mean of 3 runs).
void BM_GlobalModelPlan(benchmark::State& state) {
  const ModelReshardPlan& plan = plan_of(static_cast<int>(state.range(0)), state.range(1));
  std::size_t transfers = 0;
  for (auto _ : state) {
    auto all = plan.all_transfers();
    transfers = all.size();
    benchmark::DoNotOptimize(all);
  }
  state.counters["transfers"] = static_cast<double>(transfers);
}
BENCHMARK(BM_GlobalModelPlan)
    ->ArgsProduct({{0, 1, 2}, {64, 256, 1024, 4096}})
    ->Args({3, 256})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// Planning cost against the number of tensors: n [64, 32] tensors from ZeRO-3 over 8 ranks to
// Megatron's distributed optimizer (dp 4 x tp 2), built and planned whole each iteration. Linear
// means seconds_per_tensor stays flat as n grows to 20,000.
void BM_ManyTensorsToMegatron(benchmark::State& state) {
  ModelSpec spec{"many", {}};
  for (index_t i = 0; i < state.range(0); ++i) spec.tensors.push_back({detail::concat("t", i), Dims{64, 32}, TensorRole::column_parallel});
  for (auto _ : state) {
    ModelReshardPlan plan(layout_model(spec, "zero3 dp=8"), layout_model(spec, "megatron-distopt dp=4,tp=2"));
    auto all = plan.all_transfers();
    benchmark::DoNotOptimize(all);
  }
  state.counters["seconds_per_tensor"] = benchmark::Counter(static_cast<double>(state.range(0)) * static_cast<double>(state.iterations()),
                                                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ManyTensorsToMegatron)->Arg(2500)->Arg(5000)->Arg(10000)->Arg(20000)->Unit(benchmark::kMillisecond);

// Verification of the same global plan (target: no slower than planning).
void BM_VerifyModelPlan(benchmark::State& state) {
  const ModelReshardPlan& plan = plan_of(static_cast<int>(state.range(0)), state.range(1));
  auto all = plan.all_transfers();
  for (auto _ : state) verify_plan(plan, all);
  state.counters["transfers"] = static_cast<double>(all.size());
}
BENCHMARK(BM_VerifyModelPlan)
    ->ArgsProduct({{0, 1, 2}, {64, 256, 1024, 4096}})
    ->Args({3, 256})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// One tensor across meshes, the case `shardalg plan --summary` answers: [16384, 8192] from
// S(0) on 1,024 ranks to S(0),S(1) on a 48 x 32 mesh (34,112 transfers), planned for every rank
// and (argument 1) verified. Target: plan and verification under 5 ms on one core.
void BM_OneTensorPlan(benchmark::State& state) {
  MeshLayout src = MeshLayout::parse("m0=1024", "S(0)", Dims{16384, 8192});
  MeshLayout dst = MeshLayout::parse("m0=48,m1=32", "S(0),S(1)", Dims{16384, 8192});
  bool verify = state.range(0) != 0;
  std::size_t transfers = 0;
  for (auto _ : state) {
    ReshardPlan plan{TensorLayout(src), TensorLayout(dst)};
    TransferList all = plan.all_transfers();
    if (verify) verify_plan(plan, all);
    transfers = all.size();
    benchmark::DoNotOptimize(all);
  }
  state.counters["transfers"] = static_cast<double>(transfers);
}
BENCHMARK(BM_OneTensorPlan)->ArgName("verify")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// A plan's totals (plan --summary, cost): counted rank by rank, verified, without the transfer
// list (arg 1), against listing, verifying and counting the whole list (arg 0). Plans: the
// 1,024 -> 48x32 case above (arg 0 of the second), and a replicated source S(0),R on k x k ranks to
// R,R (arg k): each destination rank's sender chosen among k replicas without visiting them.
ModelReshardPlan summary_plan(index_t k) {
  Dims shape = k == 0 ? Dims{16384, 8192} : Dims{4};
  MeshLayout src = k == 0 ? MeshLayout::parse("m0=1024", "S(0)", shape)
                          : MeshLayout::parse("dp=" + std::to_string(k) + ",tp=" + std::to_string(k), "S(0),R", shape);
  MeshLayout dst = k == 0 ? MeshLayout::parse("m0=48,m1=32", "S(0),S(1)", shape) : MeshLayout(src.mesh(), {Placement::replicate(), Placement::replicate()}, shape);
  return ModelReshardPlan(ModelLayout({NamedTensorLayout{"t", DType::fp32, TensorLayout(src)}}),
                          ModelLayout({NamedTensorLayout{"t", DType::fp32, TensorLayout(dst)}}));
}

void BM_PlanTotals(benchmark::State& state) {
  bool streamed = state.range(0) != 0;
  ModelReshardPlan plan = summary_plan(state.range(1));
  std::size_t transfers = 0;
  for (auto _ : state) {
    if (streamed) {
      transfers = CommunicationVolume::of_plan(plan).transfers();
    } else {
      TransferList all = plan.all_transfers();
      verify_plan(plan, all);
      transfers = CommunicationVolume(plan, all).transfers();
    }
  }
  state.counters["transfers"] = static_cast<double>(transfers);
  state.counters["s_per_transfer"] = benchmark::Counter(static_cast<double>(transfers), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_PlanTotals)->ArgNames({"streamed", "k"})->ArgsProduct({{0, 1}, {0, 64, 256}})->Args({1, 1024})->Unit(benchmark::kMillisecond);

// Checkpoint read items for every rank: a Llama-3-405B gate_proj [53248, 16384] saved under
// FSDP2+TP (N/8 x 8) and loaded under FSDP over N ranks. DCP's pairwise loop against the index.
struct ReadScenario {
  std::vector<ChunkMeta> saved;
  std::vector<std::vector<ChunkMeta>> wanted;  // per rank
};

const ReadScenario& read_scenario(index_t n) {
  static std::map<index_t, ReadScenario> cache;
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  ModelSpec one{"gate", {ModelTensor{"gate", Dims{53248, 16384}, TensorRole::column_parallel}}};
  ModelLayout saved = layout_model(one, "fsdp-tp dp=" + std::to_string(n / 8) + ",tp=8");
  ModelLayout load = layout_model(one, "fsdp dp=" + std::to_string(n));
  ReadScenario s{saved_chunks(saved[0].layout), {}};
  for (index_t rank : load.ranks()) s.wanted.push_back(wanted_chunks(load[0].layout, rank));
  return cache.emplace(n, std::move(s)).first->second;
}

void BM_ReadItemsPairwise(benchmark::State& state) {
  const ReadScenario& s = read_scenario(state.range(0));
  std::size_t items = 0;
  for (auto _ : state) {
    items = 0;
    for (const auto& wanted : s.wanted) items += read_items_pairwise(s.saved, wanted).size();
  }
  state.counters["items"] = static_cast<double>(items);
}
BENCHMARK(BM_ReadItemsPairwise)->RangeMultiplier(4)->Range(64, 4096)->Unit(benchmark::kMillisecond);

// The index is built inside the timed loop: the comparison includes its cost.
void BM_ReadItemsIndexed(benchmark::State& state) {
  const ReadScenario& s = read_scenario(state.range(0));
  std::size_t items = 0;
  for (auto _ : state) {
    CheckpointIndex index(s.saved);
    items = 0;
    for (const auto& wanted : s.wanted) items += index.read_items(wanted).size();
  }
  state.counters["items"] = static_cast<double>(items);
}
BENCHMARK(BM_ReadItemsIndexed)->RangeMultiplier(4)->Range(64, 4096)->Unit(benchmark::kMillisecond);

}  // namespace
