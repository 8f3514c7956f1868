// 2-D block-cyclic redistribution: the engine against ScaLAPACK's pdgemr2d (target: at least 3x
// faster), n x n fp64 matrices on 8 ranks, (0) the same 2 x 4 grid from 64 x 64 blocks to
// 128 x 128, (1) a 2 x 4 grid to a 4 x 2 grid, 64 x 64 blocks; and the engine against
// MPI_Alltoallv moving the same bytes (what MPI's transport alone costs). Run under mpirun -np 8;
// rank 0 reports; each iteration's time is the slowest rank's.
//
// ScaLAPACK stores matrices column-major; a layout of shape [columns, rows] with BC(1, MB) on the
// process-row mesh dim and BC(0, NB) on the process-column one stores its tiles exactly as
// ScaLAPACK's local arrays, so both move the same bytes between the same ranks (checked once).
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/engine.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
#include "shardalg/exec/mpi/mpi_shared_memory_communicator.hpp"
#include "alltoallv_reference.hpp"
#include "mpi_bench_main.hpp"

extern "C" {
void Cblacs_get(int context, int what, int* value);
void Cblacs_gridinit(int* context, const char* order, int rows, int cols);
void Cblacs_gridexit(int context);
int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc, const int* nprocs);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb, const int* irsrc, const int* icsrc, const int* context,
               const int* lld, int* info);
void pdgemr2d_(const int* m, const int* n, const double* a, const int* ia, const int* ja, const int* desca, double* b, const int* ib,
               const int* jb, const int* descb, const int* context);
}

using namespace shardalg;

namespace {

struct Grid {
  int rows, cols, block;
};

std::pair<Grid, Grid> grids(int which) {
  if (which == 0) return {{2, 4, 64}, {2, 4, 128}};
  return {{2, 4, 64}, {4, 2, 64}};
}

MeshLayout layout_of(const Grid& g, index_t n) {
  return MeshLayout::parse("p=" + std::to_string(g.rows) + ",q=" + std::to_string(g.cols),
                           "BC(1," + std::to_string(g.block) + "),BC(0," + std::to_string(g.block) + ")", Dims{n, n});
}

// A BLACS grid over all 8 processes, row-major like the mesh; its local array and descriptor.
struct BlacsMatrix {
  int context = -1, desc[9] = {};
  std::vector<double> local;
  BlacsMatrix(const Grid& g, int n, int rank) {
    int system = 0;
    Cblacs_get(0, 0, &system);
    context = system;
    Cblacs_gridinit(&context, "Row", g.rows, g.cols);
    int prow = rank / g.cols, pcol = rank % g.cols, zero = 0, info = 0;
    int local_rows = numroc_(&n, &g.block, &prow, &zero, &g.rows), local_cols = numroc_(&n, &g.block, &pcol, &zero, &g.cols);
    int lld = std::max(1, local_rows);
    descinit_(desc, &n, &n, &g.block, &g.block, &zero, &zero, &context, &lld, &info);
    if (info != 0) detail::fail("descinit failed: ", info);
    local.assign(static_cast<std::size_t>(local_rows) * static_cast<std::size_t>(local_cols), 0.0);
  }
  BlacsMatrix(const BlacsMatrix&) = delete;
  BlacsMatrix& operator=(const BlacsMatrix&) = delete;
  ~BlacsMatrix() { Cblacs_gridexit(context); }
};

// One rank's part of redistributing an n x n fp64 matrix between the grids of `which`, with
// random source data and a prepared reshard.
struct Redistribution {
  std::pair<Grid, Grid> grid_pair;
  index_t n;
  ModelReshardPlan plan;
  RankPart part;
  std::vector<std::vector<std::byte>> source_data, destination_data;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
  PreparedReshard<MpiCommunicator> reshard;

  Redistribution(MpiCommunicator& comm, index_t size, int which)
      : grid_pair(grids(which)),
        n(size),
        plan(ModelLayout({{"a", DType::fp64, TensorLayout(layout_of(grid_pair.first, n))}}), ModelLayout({{"a", DType::fp64, TensorLayout(layout_of(grid_pair.second, n))}})),
        part(plan, comm.rank()),
        source_data(make_source_data(plan, comm.rank(), 5)),
        destination_data(make_destination_buffers(plan, comm.rank())),
        sources{{source_data[0].data(), source_data[0].size(), DType::fp64}},
        destinations{{destination_data[0].data(), destination_data[0].size(), DType::fp64}},
        reshard(plan, part, std::span<const SourceBuffer>(sources), std::span<const DestinationBuffer>(destinations), comm) {}
  const Grid& from() const { return grid_pair.first; }
  const Grid& to() const { return grid_pair.second; }
  // Every rank's destination elements hold the source data, as ScaLAPACK's layout says.
  bool checked(MpiCommunicator& comm) const { return comm.all_sum(check_destination_data(plan, comm.rank(), destination_data, 5).mismatches) == 0; }
};

// The same redistribution prepared over shared memory (MpiSharedMemoryCommunicator), with a
// segment that holds a rank's sends at n = 8192 in one round.
struct SharedMemoryReshard {
  MpiSharedMemoryCommunicator comm{MPI_COMM_WORLD, index_t{64} << 20};
  PreparedReshard<MpiSharedMemoryCommunicator> reshard;
  explicit SharedMemoryReshard(const Redistribution& r)
      : reshard(r.plan, r.part, std::span<const SourceBuffer>(r.sources), std::span<const DestinationBuffer>(r.destinations), comm) {}
};

// The engine and pdgemr2d in alternating iterations (bench::alternating). The engine's form
// (third argument): 0 one-shot execute calls over MPI messages (checks and all-max each call,
// like pdgemr2d's own per-call setup; the plan is made once), 1 a PreparedReshard run over MPI
// messages, 2 a PreparedReshard run over shared memory. Manual time: the engine's;
// `pdgemr2d_ms`: pdgemr2d's mean; `speedup`: pdgemr2d's time over the engine's (the target's
// measure).
void BM_EngineVsPdgemr2d(benchmark::State& state) {
  MpiCommunicator comm;
  Redistribution r(comm, state.range(0), static_cast<int>(state.range(1)));
  StagingArena arena;
  ExecuteOptions options;
  options.arena = &arena;
  std::optional<SharedMemoryReshard> shared;
  if (state.range(2) == 2) shared.emplace(r);
  auto engine = [&] {
    if (state.range(2) == 2)
      shared->reshard.run();
    else if (state.range(2) == 1)
      r.reshard.run();
    else
      execute(r.plan, r.part, std::span<const SourceBuffer>(r.sources), std::span<const DestinationBuffer>(r.destinations), comm, options);
  };
  // The same bytes as pdgemr2d: our tiles are ScaLAPACK's local arrays of the same matrix.
  int size = static_cast<int>(r.n), one = 1;
  BlacsMatrix a(r.from(), size, static_cast<int>(comm.rank())), b(r.to(), size, static_cast<int>(comm.rank()));
  auto pdgemr2d = [&] { pdgemr2d_(&size, &size, a.local.data(), &one, &one, a.desc, b.local.data(), &one, &one, b.desc, &a.context); };
  bool same = a.local.size() * 8 == r.source_data[0].size() && b.local.size() * 8 == r.destination_data[0].size();
  if (same) {
    std::memcpy(a.local.data(), r.source_data[0].data(), r.source_data[0].size());
    engine();
    pdgemr2d();
    same = std::memcmp(b.local.data(), r.destination_data[0].data(), r.destination_data[0].size()) == 0;
  }
  if (comm.all_sum(same ? 0 : 1) != 0) state.SkipWithError("the engine and pdgemr2d disagree");
  if (!r.checked(comm)) state.SkipWithError("the engine's result does not match");
  bench::alternating(state, MPI_COMM_WORLD, pdgemr2d, engine, "pdgemr2d", "speedup");
  state.counters["MB"] = 8.0 * static_cast<double>(r.n * r.n) / 1e6;
}

// What any redistribution through MPI costs here: MPI_Alltoallv moving the same byte matrix
// (the local part on its diagonal) between contiguous buffers, alternating with prepared engine
// runs over MPI messages (third argument 0) or shared memory (1). Manual time: the engine's;
// `alltoallv_ms`: Alltoallv's mean; `ratio`: the engine's throughput over Alltoallv's.
void BM_EngineVsAlltoallv(benchmark::State& state) {
  MpiCommunicator comm;
  Redistribution r(comm, state.range(0), static_cast<int>(state.range(1)));
  std::optional<SharedMemoryReshard> shared;
  if (state.range(2)) shared.emplace(r);
  auto engine = [&] { state.range(2) ? shared->reshard.run() : r.reshard.run(); };
  engine();
  if (!r.checked(comm)) state.SkipWithError("the engine's result does not match");
  bench::Alltoallv alltoallv(r.part, static_cast<std::size_t>(comm.size()), true);
  bench::alternating(state, MPI_COMM_WORLD, [&] { alltoallv(comm.comm()); }, engine, "alltoallv", "ratio");
}

BENCHMARK(BM_EngineVsPdgemr2d)->ArgsProduct({{2048, 4096, 8192}, {0, 1}, {0, 1, 2}})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0)->MinWarmUpTime(0.5);
BENCHMARK(BM_EngineVsAlltoallv)->ArgsProduct({{2048, 4096}, {0, 1}, {0, 1}})->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(1.0)->MinWarmUpTime(0.5);

}  // namespace

int main(int argc, char** argv) { return shardalg::bench::run_under_mpi(argc, argv, 8); }
