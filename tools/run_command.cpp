// shardalg run: executes a reshard across the MPI processes it runs in, on deterministic data,
// and checks every destination element. Run it under mpirun; one process is a valid world.
#include <mpi.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "plan_options.hpp"
#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/engine.hpp"
#include "shardalg/exec/mpi/mpi_collective_program.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
#include "shardalg/exec/mpi/mpi_shared_memory_communicator.hpp"

namespace shardalg::cli {
namespace {

struct RunOptions : LayoutOptions {
  bool lower = false;
  CostOptions cost;
  index_t memory_limit = 0;
  std::uint64_t seed = 1;
  double timeout = 300;
  index_t repeat = 1;
  std::string transport = "mpi";
  index_t shared_memory_capacity = MpiSharedMemoryCommunicator::default_capacity;
};

// MPI initialized for the lifetime of the command, finalized on every path.
struct MpiSession {
  MpiSession() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(nullptr, nullptr);
  }
  ~MpiSession() {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
};

int run(const CLI::App& cmd, const RunOptions& o) {
  MpiSession session;
  MpiCommunicator comm;
  std::string failure;
  // On this rank: preparing the reshard (checks and agreement, or the collective program's
  // sub-communicators), and one run of it, the mean over --repeat runs. Not planning, data
  // generation or checking.
  double prepare_seconds = 0, seconds = 0;
  DataCheck check;
  ExecuteStats stats;
  // Bounds every wait; the default until --timeout is known to be valid (an invalid one is
  // reported like any bad option, after the first agreement).
  double timeout = ExecuteOptions{}.timeout_seconds;
  // Each stage ends with all ranks agreeing that none failed, so no rank waits in a collective
  // the failing one never reaches.
  auto agreed = [&] { return comm.all_max(failure.empty() ? 0 : 1, timeout) == 0; };
  std::optional<ModelReshardPlan> plan;
  std::optional<RankPart> part;
  std::optional<LoweredProgram> lowered;
  std::vector<std::vector<std::byte>> source_data, destination_data;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
  failure = failure_of([&] {
    if (o.repeat < 1) detail::fail("--repeat ", o.repeat, " must be at least 1");
    if (o.transport != "mpi" && o.transport != "shared-memory") detail::fail("--transport '", o.transport, "' must be mpi or shared-memory");
    if (cmd.count("--shared-memory-capacity") > 0 && o.transport != "shared-memory")
      detail::fail("--shared-memory-capacity applies only to --transport shared-memory");
    try {
      timeout = checked_timeout(o.timeout);
    } catch (const Error& e) {
      detail::fail("--timeout: ", e.what());
    }
    plan.emplace(plan_from(cmd, o));
    for (const ModelLayout* layout : {&plan->source(), &plan->destination()})
      if (!layout->ranks().empty() && layout->ranks().back() >= comm.size())
        detail::fail("the layouts use rank ", layout->ranks().back(), " but only ", comm.size(), " processes run; start ",
                     layout->ranks().back() + 1, " or more (mpirun -np N)");
    part.emplace(*plan, comm.rank());
    if (o.lower) {
      auto [src, dst] = single_mesh_tensor(*plan);
      lowered = lower_reshard(*src, *dst, element_bytes(plan->source()[0].dtype), cost_model_from(o.cost));
    }
    source_data = make_source_data(*plan, comm.rank(), o.seed);
    destination_data = make_destination_buffers(*plan, comm.rank());
    for (auto& b : source_data) sources.push_back({b.data(), b.size()});
    for (auto& b : destination_data) destinations.push_back({b.data(), b.size()});
    for (std::size_t t = 0; t < plan->source().size(); ++t) sources[plan->source().buffer_of(t)].dtype = plan->source()[t].dtype;
    for (std::size_t t = 0; t < plan->destination().size(); ++t)
      destinations[plan->destination().buffer_of(t)].dtype = plan->destination()[t].dtype;
  });
  if (agreed()) {
    failure = failure_of([&] {
      ExecuteOptions options;
      options.memory_limit = o.memory_limit;
      options.timeout_seconds = timeout;
      auto start = std::chrono::steady_clock::now();
      auto lap = [&start] {
        auto now = std::chrono::steady_clock::now();
        double elapsed = std::chrono::duration<double>(now - start).count();
        start = now;
        return elapsed;
      };
      std::optional<MpiCollectiveProgram> program;
      std::optional<MpiSharedMemoryCommunicator> shared;
      std::optional<PreparedReshard<MpiCommunicator>> reshard;
      std::optional<PreparedReshard<MpiSharedMemoryCommunicator>> shared_reshard;
      if (lowered && lowered->choice == LoweringChoice::collectives) {
        program.emplace(*lowered->collectives, comm.comm(), timeout);
        if (comm.rank() == 0) stats.bytes_sent = std::llround(lowered->collectives->bytes);  // the program's total, all groups
      } else if (o.transport == "shared-memory") {
        shared.emplace(comm.comm(), o.shared_memory_capacity);
        shared_reshard.emplace(*plan, *part, std::span<const SourceBuffer>(sources), std::span<const DestinationBuffer>(destinations), *shared, options);
      } else {
        reshard.emplace(*plan, *part, std::span<const SourceBuffer>(sources), std::span<const DestinationBuffer>(destinations), comm, options);
      }
      prepare_seconds = lap();
      for (index_t r = 0; r < o.repeat; ++r) {
        if (reshard || shared_reshard) {
          stats = reshard ? reshard->run() : shared_reshard->run();
          continue;
        }
        std::span<const std::byte> source;
        if (!source_data.empty()) source = source_data[0];
        std::vector<std::byte> result = program->run(source, plan->source()[0].dtype);
        if (!destination_data.empty()) {
          if (result.size() != destination_data[0].size())
            detail::fail("the collective program left ", result.size(), " bytes on rank ", comm.rank(), ", its buffer has ", destination_data[0].size());
          std::copy(result.begin(), result.end(), destination_data[0].begin());
        }
      }
      seconds = lap() / static_cast<double>(o.repeat);
      check = check_destination_data(*plan, comm.rank(), destination_data, o.seed);
    });
  }
  // Every rank reaches this point (errors are agreed inside execute, or the same on every rank
  // for bad options), so the summary collectives cannot hang.
  index_t first_failed = -comm.all_max(failure.empty() ? -comm.size() : -comm.rank(), timeout);
  if (first_failed < comm.size()) {  // one line, from the lowest failing rank
    if (first_failed == comm.rank())  // one write, as in shardalg.cpp's fail_with
      std::cerr << detail::concat("error (rank ", comm.rank(), "): ", failure, "\n") << std::flush;
    comm.all_max(0, timeout);  // a barrier: the launcher drops output once a process exits non-zero
    return 2;
  }
  index_t elements = comm.all_sum(check.elements, timeout), mismatches = comm.all_sum(check.mismatches, timeout);
  index_t sent = comm.all_sum(stats.bytes_sent, timeout), local = comm.all_sum(stats.bytes_local, timeout);
  index_t peak = comm.all_max(stats.peak_staging, timeout), rounds = comm.all_max(stats.rounds, timeout);
  double slowest[2] = {0, 0}, mine[2] = {prepare_seconds, seconds};
  MPI_Allreduce(mine, slowest, 2, MPI_DOUBLE, MPI_MAX, comm.comm());
  if (comm.rank() == 0) {
    if (lowered)
      std::cout << "program                    "
                << (lowered->choice == LoweringChoice::collectives ? detail::concat("collectives (", lowered->collectives->collectives(), " collective(s) on mesh-dim groups)")
                                                                    : "point-to-point (" + lowered->reason + ")")
                << "\n";
    std::cout << "processes                  " << comm.size() << "\n";
    if (!(lowered && lowered->choice == LoweringChoice::collectives))
      std::cout << "transport                  " << (o.transport == "mpi" ? "MPI messages" : "shared memory") << "\n";
    std::cout << "bytes sent between ranks   " << sent << "\n";
    if (!(lowered && lowered->choice == LoweringChoice::collectives))  // the engine's own figures
      std::cout << "bytes copied locally       " << local << "\n"
                << "rounds                     " << rounds << "\n"
                << "peak staging on a rank     " << peak << " bytes\n";
    std::cout << "prepared once in           " << slowest[0] << " s\n"
              << "runs                       " << o.repeat << "\n"
              << "verified: " << elements << " elements, " << mismatches << " mismatches, " << slowest[1] << " s\n";
  }
  std::cout << std::flush;
  comm.all_max(0, timeout);  // a barrier, as for errors: rank 0's summary is out before anyone exits
  return mismatches == 0 ? 0 : 1;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Execute a reshard across MPI processes on generated data and verify every element");
  add_layout_options(*cmd, *o);
  cmd->add_option("--memory-limit", o->memory_limit, "Staging bytes per rank (0: no limit); large messages then move in rounds")
      ->capture_default_str();
  auto* lower = cmd->add_flag("--lower", o->lower, "Lower a one-mesh reshard and run its collectives on sub-communicators when they are cheaper");
  add_cost_options(*cmd, o->cost, lower);
  cmd->add_option("--seed", o->seed, "Seed of the generated data")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", o->repeat, "Run the reshard this many times, prepared once (the last line's seconds: the mean per run)")
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Seconds to wait for a peer before failing")->capture_default_str();
  cmd->add_option("--transport", o->transport,
                  "How the engine moves messages: mpi (MPI point-to-point, any ranks) or shared-memory (a /dev/shm segment per rank, "
                  "all ranks on one node)")
      ->capture_default_str();
  cmd->add_option("--shared-memory-capacity", o->shared_memory_capacity,
                  "Bytes of each rank's shared-memory segment (--transport shared-memory); larger reshards move in rounds")
      ->capture_default_str();
  cmd->callback([o, cmd, &exit_code] { exit_code = run(*cmd, *o); });
}

}  // namespace shardalg::cli
