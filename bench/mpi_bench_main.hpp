// What the benchmarks that run under mpirun share: every rank runs the benchmarks, each
// iteration timed as the slowest rank's, and rank 0 reports.
#pragma once

#include <benchmark/benchmark.h>
#include <mpi.h>

#include <iostream>
#include <string>

namespace shardalg::bench {

// Runs `body` once on every rank, after a barrier; returns the slowest rank's wall time.
template <class F>
double slowest_rank_seconds(MPI_Comm comm, F&& body) {
  MPI_Barrier(comm);
  double start = MPI_Wtime();
  body();
  double mine = MPI_Wtime() - start, slowest = 0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
  return slowest;
}

// Times `body` per iteration as the slowest rank's wall time (manual time).
template <class F>
void timed(benchmark::State& state, MPI_Comm comm, F&& body) {
  for (auto _ : state) state.SetIterationTime(slowest_rank_seconds(comm, body));
}

// Runs `reference` and `measured` in alternating iterations, so that both see the same machine
// state (on an oversubscribed machine, runs minutes apart differ by up to 30%). Manual time:
// `measured`'s. Sets the counters `<name>_ms` (the reference's mean) and `<ratio>` (the
// reference's summed time over the measured one's).
template <class R, class M>
void alternating(benchmark::State& state, MPI_Comm comm, R&& reference, M&& measured, const std::string& name, const std::string& ratio) {
  double reference_seconds = 0, measured_seconds = 0;
  for (auto _ : state) {
    reference_seconds += slowest_rank_seconds(comm, reference);
    double seconds = slowest_rank_seconds(comm, measured);
    measured_seconds += seconds;
    state.SetIterationTime(seconds);
  }
  state.counters[name + "_ms"] = 1e3 * reference_seconds / static_cast<double>(state.iterations());
  state.counters[ratio] = reference_seconds / measured_seconds;
}

class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

// Runs the registered benchmarks; `required_ranks` > 0 refuses other world sizes.
inline int run_under_mpi(int argc, char** argv, int required_ranks = 0) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (required_ranks > 0 && size != required_ranks) {
    if (rank == 0) std::cerr << argv[0] << " needs " << required_ranks << " processes (mpirun -np " << required_ranks << "), got " << size << "\n";
    MPI_Finalize();
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (rank == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    SilentReporter silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}

}  // namespace shardalg::bench
