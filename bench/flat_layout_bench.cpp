// Flat-partition slice maps of a 405B-class model: Llama-3-405B's 1,137 tensors (the model zoo) under
// ZeRO-3, ZeRO-1/2 and Megatron's distributed optimizer. One rank's map (its fragments and their
// global boxes, what a rank computes to load or save its shard) and all ranks' maps; and whole
// models' layouts built from recipes.
#include <benchmark/benchmark.h>

#include <string>

#include "shardalg/shardalg.hpp"

using namespace shardalg;

namespace {

std::vector<FlatTensor> llama405b_tensors() {
  std::vector<FlatTensor> tensors;
  for (const ModelTensor& t : model_from_zoo("llama3-405b").tensors) tensors.push_back(FlatTensor::whole(t.name, t.shape));
  return tensors;
}

FlatLayout make_layout(int scheme, index_t ranks) {
  switch (scheme) {
    case 0: return zero3_layout(llama405b_tensors(), iota_ranks(ranks));
    case 1: return zero12_layout(llama405b_tensors(), iota_ranks(ranks));
    default: {
      MegatronBufferOptions options;
      options.bucket_size = std::max<index_t>(40'000'000, 1'000'000 * ranks);  // Megatron's default
      return megatron_layout(llama405b_tensors(), iota_ranks(ranks), options);
    }
  }
}

const char* kSchemeNames[] = {"zero3", "zero12", "megatron"};

// Returns the number of pieces (fragments) and the boxes they map to, so nothing is optimized away.
std::size_t one_rank_map(const FlatLayout& layout, index_t rank) {
  std::size_t boxes = 0;
  for (const FlatFragment& f : layout.fragments(rank)) boxes += layout.global_boxes(f).size();
  return boxes;
}

// Target: under 1 ms per rank at 1,024 ranks.
void BM_OneRankFlatMap(benchmark::State& state) {
  int scheme = static_cast<int>(state.range(0));
  index_t ranks = state.range(1);
  FlatLayout layout = make_layout(scheme, ranks);
  index_t rank = 0;
  std::size_t pieces = 0;
  for (auto _ : state) {
    pieces = layout.fragments(rank).size();
    benchmark::DoNotOptimize(one_rank_map(layout, rank));
    rank = (rank + 97) % ranks;
  }
  state.counters["fragments"] = static_cast<double>(pieces);
  state.SetLabel(kSchemeNames[scheme]);
}
BENCHMARK(BM_OneRankFlatMap)->ArgsProduct({{0, 1, 2}, {1024}})->Unit(benchmark::kMicrosecond);

// All ranks; items are fragments, so a flat items/s across world sizes means time linear in
// ranks x pieces.
void BM_AllRanksFlatMap(benchmark::State& state) {
  int scheme = static_cast<int>(state.range(0));
  index_t ranks = state.range(1);
  FlatLayout layout = make_layout(scheme, ranks);
  std::int64_t fragments = 0;
  for (auto _ : state) {
    fragments = 0;
    for (index_t rank = 0; rank < ranks; ++rank) {
      fragments += static_cast<std::int64_t>(layout.fragments(rank).size());
      benchmark::DoNotOptimize(one_rank_map(layout, rank));
    }
  }
  state.SetItemsProcessed(state.iterations() * fragments);
  state.counters["fragments"] = static_cast<double>(fragments);
  state.SetLabel(kSchemeNames[scheme]);
}
BENCHMARK(BM_AllRanksFlatMap)->ArgsProduct({{0, 1, 2}, {64, 256, 1024}})->Unit(benchmark::kMillisecond);

// Building the layout itself (offsets, buckets) from the model's shapes.
void BM_BuildFlatLayout(benchmark::State& state) {
  int scheme = static_cast<int>(state.range(0));
  std::vector<FlatTensor> tensors = llama405b_tensors();
  for (auto _ : state) benchmark::DoNotOptimize(make_layout(scheme, 1024));
  state.SetLabel(kSchemeNames[scheme]);
}
BENCHMARK(BM_BuildFlatLayout)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

// A whole model's layout from a recipe (layout_model): ZeRO / Megatron partitions composed with
// TP, including the check that every tensor has elements in every group (what a job computes
// once at start-up, before any plan).
const char* kModelRecipes[][2] = {{"llama3-405b", "zero3 dp=1024"},
                                  {"llama3-405b", "zero1 dp=128,tp=8"},
                                  {"llama3-405b", "megatron-distopt dp=128,tp=8"},
                                  {"deepseek-v3", "ep ep=64,dp=256,experts=zero3"}};

void BM_LayoutModel(benchmark::State& state) {
  const auto& [name, recipe] = kModelRecipes[state.range(0)];
  ModelSpec model = model_from_zoo(name);
  for (auto _ : state) benchmark::DoNotOptimize(layout_model(model, recipe));
  state.counters["tensors"] = static_cast<double>(model.tensors.size());
  state.SetLabel(std::string(name) + ": " + recipe);
}
BENCHMARK(BM_LayoutModel)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);

}  // namespace
