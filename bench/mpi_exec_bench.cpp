// The MPI executor against plain MPI_Alltoallv moving the same byte matrix (target: at least 0.9x
// its throughput at 8 ranks). Run under mpirun; rank 0 reports. Each iteration's time is the
// slowest rank's (manual timing after a barrier). Scenarios are whole-model reshards from the
// recipes, on Llama-3-8B shapes scaled down so that the buffers fit the machine.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <memory>
#include <string>

#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/engine.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
#include "shardalg/exec/mpi/mpi_shared_memory_communicator.hpp"
#include "alltoallv_reference.hpp"
#include "mpi_bench_main.hpp"
#include "shardalg/model/layout_recipe.hpp"

using namespace shardalg;

namespace {

struct Setup {
  std::unique_ptr<ModelReshardPlan> plan;
  std::unique_ptr<RankPart> part;
  std::vector<std::vector<std::byte>> source_data, destination_data;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
  index_t bytes_moved = 0;  // by this rank, to other ranks
};

Setup setup(int which, index_t n, index_t scale, index_t rank) {
  std::string dp = std::to_string(n);
  std::string from = which == 0 ? "zero3 dp=" + dp : "fsdp dp=" + dp;
  std::string to = "fsdp-tp dp=" + std::to_string(n / 2) + ",tp=2";
  ModelSpec model = scale_down(model_from_zoo("llama3-8b"), scale);
  for (ModelTensor& t : model.tensors) t.dtype = DType::fp32;
  Setup s;
  s.plan = std::make_unique<ModelReshardPlan>(layout_model(model, from), layout_model(model, to));
  s.part = std::make_unique<RankPart>(*s.plan, rank);
  s.source_data = make_source_data(*s.plan, rank, 3);
  s.destination_data = make_destination_buffers(*s.plan, rank);
  for (auto& b : s.source_data) s.sources.push_back({b.data(), b.size(), DType::fp32});
  for (auto& b : s.destination_data) s.destinations.push_back({b.data(), b.size(), DType::fp32});
  for (const Message& m : s.part->sends()) s.bytes_moved += m.bytes;
  return s;
}

// The engine: pack, send, local copies, unpack, for this rank's part.
void BM_EngineReshard(benchmark::State& state) {
  MpiCommunicator comm;
  Setup s = setup(static_cast<int>(state.range(0)), comm.size(), state.range(1), comm.rank());
  ExecuteOptions options;
  StagingArena arena;  // reused across iterations, as a framework resharding every step would
  if (state.range(2)) options.arena = &arena;
  options.in_place_messages = state.range(3) != 0;  // derived datatypes (the default) or packing
  bench::timed(state, comm.comm(), [&] {
    execute(*s.plan, *s.part, std::span<const SourceBuffer>(s.sources), std::span<const DestinationBuffer>(s.destinations), comm, options);
  });
  index_t total = comm.all_sum(s.bytes_moved);
  state.SetBytesProcessed(state.iterations() * total);
  state.counters["MB_between_ranks"] = static_cast<double>(total) / 1e6;
}

void BM_Alltoallv(benchmark::State& state) {
  MpiCommunicator comm;
  Setup s = setup(static_cast<int>(state.range(0)), comm.size(), state.range(1), comm.rank());
  bench::Alltoallv alltoallv(*s.part, static_cast<std::size_t>(comm.size()), state.range(2) != 0);
  bench::timed(state, comm.comm(), [&] { alltoallv(comm.comm()); });
  index_t total = comm.all_sum(s.bytes_moved);
  state.SetBytesProcessed(state.iterations() * total);
  state.counters["MB_between_ranks"] = static_cast<double>(total) / 1e6;
}

// The engine (in place) and Alltoallv with the diagonal in alternating iterations
// (bench::alternating): one-shot execute calls (checks and all-max each call, staging arena
// reused), or a PreparedReshard run each iteration (checked and agreed once, as a framework
// resharding every step would), over MPI messages or shared memory. Manual time: the engine's; `alltoallv_ms`: Alltoallv's mean;
// `ratio`: the engine's throughput over Alltoallv's (the target's measure).
void BM_EngineVsAlltoallv(benchmark::State& state) {
  MpiCommunicator comm;
  Setup s = setup(static_cast<int>(state.range(0)), comm.size(), state.range(1), comm.rank());
  bench::Alltoallv alltoallv(*s.part, static_cast<std::size_t>(comm.size()), true);
  auto sources = std::span<const SourceBuffer>(s.sources);
  auto destinations = std::span<const DestinationBuffer>(s.destinations);
  auto reference = [&] { alltoallv(comm.comm()); };
  if (state.range(2) == 2) {
    MpiSharedMemoryCommunicator shared;  // the default 4 MiB segment: these reshards move in rounds
    PreparedReshard reshard(*s.plan, *s.part, sources, destinations, shared);
    bench::alternating(state, comm.comm(), reference, [&] { reshard.run(); }, "alltoallv", "ratio");
  } else if (state.range(2) == 1) {
    PreparedReshard reshard(*s.plan, *s.part, sources, destinations, comm);
    bench::alternating(state, comm.comm(), reference, [&] { reshard.run(); }, "alltoallv", "ratio");
  } else {
    StagingArena arena;
    ExecuteOptions options;
    options.arena = &arena;
    bench::alternating(state, comm.comm(), reference, [&] { execute(*s.plan, *s.part, sources, destinations, comm, options); }, "alltoallv", "ratio");
  }
  index_t total = comm.all_sum(s.bytes_moved);
  state.SetBytesProcessed(state.iterations() * total);
}

// (scenario, scale-down): 0 = ZeRO-3 dp=N -> FSDP2+TP (N/2 x 2), 1 = FSDP dp=N -> FSDP2+TP.
// Engine: (scenario, scale-down, staging arena reused across calls, messages in place as derived
// datatypes rather than packed). Alltoallv: (scenario, scale-down, local part on the diagonal).
BENCHMARK(BM_EngineReshard)->Args({0, 8, 1, 0})->Args({1, 8, 1, 0})->Args({0, 8, 1, 1})->Args({1, 8, 1, 1})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Alltoallv)->Args({0, 8, 0})->Args({1, 8, 0})->Args({0, 8, 1})->Args({1, 8, 1})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
// (scenario, scale-down, form): 0 one-shot execute, 1 prepared, 2 prepared over shared memory.
BENCHMARK(BM_EngineVsAlltoallv)->ArgsProduct({{0, 1}, {8}, {0, 1, 2}})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) { return shardalg::bench::run_under_mpi(argc, argv); }
