// main() of the benchmarks that run under mpirun: every rank runs the benchmarks (they time the
// slowest rank), rank 0 reports.
#pragma once

#include <benchmark/benchmark.h>
#include <mpi.h>

#include <iostream>

namespace shardalg::bench {

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
