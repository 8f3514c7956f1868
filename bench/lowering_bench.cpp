// Lowering and relabeling speed (issue 5):
//   - search_collectives on meshes of 2 to 5 dims (the cheapest collective program; target
//     under 10 ms for 4-D meshes), a Llama-3-405B FFN weight [53248, 16384] in bf16;
//   - lower_reshard (the search plus the point-to-point plan's volume) at 64 ranks;
//   - relabel_destination at 256 ranks (exact) and 1,024 ranks (greedy).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "shardalg/shardalg.hpp"

using namespace shardalg;

namespace {

const Dims ffn{53248, 16384};

struct Case {
  const char *mesh, *src, *dst;
};

// Reshards that need several kinds of steps: Partial reductions, gathers, exchanges, new orders.
Case case_for(int dims) {
  switch (dims) {
    case 2: return {"dp=128,tp=8", "P,S(0)", "S(1),S(0)"};
    case 3: return {"pp=16,dp=8,tp=8", "P,S(0),S(1)", "S(1),S(1),S(0)"};
    case 4: return {"pp=8,dp=8,cp=4,tp=4", "P,S(0),S(1),S(1)", "S(1),S(0),R,S(0)"};
    default: return {"pp=4,dp=8,cp=2,ep=4,tp=4", "P,S(0),S(1),R,S(0)", "S(1),R,S(0),S(0),S(1)"};
  }
}

void BM_SearchCollectives(benchmark::State& state) {
  Case c = case_for(static_cast<int>(state.range(0)));
  MeshLayout src = MeshLayout::parse(c.mesh, c.src, ffn), dst = MeshLayout::parse(c.mesh, c.dst, ffn);
  index_t collectives = 0;
  for (auto _ : state) {
    auto program = search_collectives(src, dst, 2);
    collectives = program->collectives();
    benchmark::DoNotOptimize(program);
  }
  state.counters["collectives"] = static_cast<double>(collectives);
  state.counters["ranks"] = static_cast<double>(src.mesh().size());
  state.SetLabel(std::string(c.mesh) + "  " + c.src + " -> " + c.dst);
}
BENCHMARK(BM_SearchCollectives)->DenseRange(2, 5)->Unit(benchmark::kMillisecond);

void BM_LowerReshard(benchmark::State& state) {
  MeshLayout src = MeshLayout::parse("dp=8,tp=8", "P,S(0)", ffn), dst = MeshLayout::parse("dp=8,tp=8", "S(1),S(0)", ffn);
  for (auto _ : state) benchmark::DoNotOptimize(lower_reshard(src, dst, 2));
  state.SetLabel("dp=8,tp=8  P,S(0) -> S(1),S(0), with the point-to-point plan's volume");
}
BENCHMARK(BM_LowerReshard)->Unit(benchmark::kMillisecond);

// A restarted job whose launcher shuffled the ranks: FSDP+TP (dp, tp) -> the same roles on
// shuffled processes with TP re-laid along the other dim.
ModelReshardPlan shuffled_plan(index_t dp, index_t tp) {
  std::string mesh = "dp=" + std::to_string(dp) + ",tp=" + std::to_string(tp);
  std::vector<index_t> devices(static_cast<std::size_t>(dp * tp));
  std::iota(devices.begin(), devices.end(), index_t{0});
  std::shuffle(devices.begin(), devices.end(), std::mt19937(7));
  MeshLayout src = MeshLayout::parse(mesh, "S(0),S(1)", ffn);
  MeshLayout dst(DeviceMesh(std::vector<std::string>{"dp", "tp"}, Dims{dp, tp}, devices), {Placement::shard(0), Placement::shard(1)}, ffn);
  return ModelReshardPlan(ModelLayout({NamedTensorLayout{"w", DType::bf16, TensorLayout(src)}}),
                          ModelLayout({NamedTensorLayout{"w", DType::bf16, TensorLayout(dst)}}));
}

void BM_Relabel(benchmark::State& state) {
  index_t ranks = state.range(0);
  ModelReshardPlan plan = shuffled_plan(ranks / 8, 8);
  Relabeling r;
  for (auto _ : state) {
    r = relabel_destination(plan);
    benchmark::DoNotOptimize(r);
  }
  state.counters["GB_before"] = r.moved_before / 1e9;
  state.counters["GB_after"] = r.moved_after / 1e9;
  state.counters["GB_gap"] = (r.moved_after - r.moved_bound) / 1e9;
  state.SetLabel(r.exact ? "exact" : "greedy");
}
BENCHMARK(BM_Relabel)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace
