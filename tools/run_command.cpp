// shardalg run: executes a reshard across the MPI processes it runs in, on deterministic data,
// and checks every destination element. Run it under mpirun; one process is a valid world.
#include <mpi.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "mpi_launch.hpp"
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

// 1. Validate: the options, the plan, the world size, the lowering, and this rank's data and
// buffers. Throws Error; every rank then agrees on failure before anything collective.
struct RunSetup {
  std::optional<ModelReshardPlan> plan;
  std::optional<RankPart> part;
  std::optional<LoweredProgram> lowered;
  std::vector<std::vector<std::byte>> source_data, destination_data;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
  double timeout = ExecuteOptions{}.timeout_seconds;  // bounds every wait; the default until --timeout is valid

  bool collectives() const { return lowered && lowered->choice == LoweringChoice::collectives; }
};

void validate(const CLI::App& cmd, const RunOptions& o, const MpiCommunicator& comm, RunSetup& s) {
  if (o.transport != "mpi" && o.transport != "shared-memory") detail::fail("--transport '", o.transport, "' must be mpi or shared-memory");
  if (cmd.count("--shared-memory-capacity") > 0 && o.transport != "shared-memory")
    detail::fail("--shared-memory-capacity applies only to --transport shared-memory");
  try {
    s.timeout = checked_timeout(o.timeout);
  } catch (const Error& e) {
    detail::fail("--timeout: ", e.what());
  }
  const ModelReshardPlan& plan = s.plan.emplace(plan_from(cmd, o));
  for (const ModelLayout* layout : {&plan.source(), &plan.destination()})
    if (!layout->ranks().empty() && layout->ranks().back() >= comm.size())
      detail::fail("the layouts use rank ", layout->ranks().back(), " but only ", comm.size(), " processes run; start ", layout->ranks().back() + 1,
                   " or more (mpirun -np N)");
  s.part.emplace(plan, comm.rank());
  if (o.lower) {
    auto [src, dst] = single_mesh_tensor(plan);
    s.lowered = lower_reshard(*src, *dst, element_bytes(plan.source()[0].dtype), cost_model_from(o.cost));
  }
  s.source_data = make_source_data(plan, comm.rank(), o.seed);
  s.destination_data = make_destination_buffers(plan, comm.rank());
  for (auto& b : s.source_data) s.sources.push_back({b.data(), b.size()});
  for (auto& b : s.destination_data) s.destinations.push_back({b.data(), b.size()});
  for (std::size_t t = 0; t < plan.source().size(); ++t) s.sources[plan.source().buffer_of(t)].dtype = plan.source()[t].dtype;
  for (std::size_t t = 0; t < plan.destination().size(); ++t) s.destinations[plan.destination().buffer_of(t)].dtype = plan.destination()[t].dtype;
}

// 2. Prepare (collective over every rank): the lowered program's sub-communicators, or the
// engine's checks and agreement over MPI messages or shared memory.
class PreparedRun {
 public:
  PreparedRun(const RunOptions& o, RunSetup& s, MpiCommunicator& comm) : setup_(s), rank_(comm.rank()) {
    ExecuteOptions options;
    options.memory_limit = o.memory_limit;
    options.timeout_seconds = s.timeout;
    std::span<const SourceBuffer> sources(s.sources);
    std::span<const DestinationBuffer> destinations(s.destinations);
    if (s.collectives()) {
      program_.emplace(*s.lowered->collectives, comm.comm(), s.timeout);
    } else if (o.transport == "shared-memory") {
      shared_.emplace(comm.comm(), o.shared_memory_capacity);
      shared_reshard_.emplace(*s.plan, *s.part, sources, destinations, *shared_, options);
    } else {
      reshard_.emplace(*s.plan, *s.part, sources, destinations, comm, options);
    }
  }

  // 3. Execute: one run, the destination buffers filled. Collective.
  ExecuteStats run() {
    if (reshard_) return reshard_->run();
    if (shared_reshard_) return shared_reshard_->run();
    std::span<const std::byte> source;
    if (!setup_.source_data.empty()) source = setup_.source_data[0];
    std::vector<std::byte> result = program_->run(source, setup_.plan->source()[0].dtype);
    if (!setup_.destination_data.empty()) {
      if (result.size() != setup_.destination_data[0].size())
        detail::fail("the collective program left ", result.size(), " bytes on rank ", rank_, ", its buffer has ", setup_.destination_data[0].size());
      std::copy(result.begin(), result.end(), setup_.destination_data[0].begin());
    }
    ExecuteStats stats;
    if (rank_ == 0) stats.bytes_sent = std::llround(setup_.lowered->collectives->bytes);  // the program's total, all groups
    return stats;
  }

 private:
  RunSetup& setup_;
  index_t rank_;
  std::optional<MpiCollectiveProgram> program_;
  std::optional<MpiSharedMemoryCommunicator> shared_;
  std::optional<PreparedReshard<MpiCommunicator>> reshard_;
  std::optional<PreparedReshard<MpiSharedMemoryCommunicator>> shared_reshard_;
};

// What this rank measured: preparing, one run (the mean over --repeat runs; not planning, data
// generation or checking), the engine's figures and the check of every destination element.
struct RunResult {
  double prepare_seconds = 0, seconds = 0;
  ExecuteStats stats;
  DataCheck check;
};

RunResult prepare_and_execute(const RunOptions& o, RunSetup& s, MpiCommunicator& comm) {
  using clock = std::chrono::steady_clock;
  RunResult result;
  auto start = clock::now();
  PreparedRun prepared(o, s, comm);
  result.prepare_seconds = std::chrono::duration<double>(clock::now() - start).count();
  start = clock::now();
  for (index_t r = 0; r < o.repeat; ++r) result.stats = prepared.run();
  result.seconds = std::chrono::duration<double>(clock::now() - start).count() / static_cast<double>(o.repeat);
  result.check = check_destination_data(*s.plan, comm.rank(), s.destination_data, o.seed);
  return result;
}

// 4. Report: one error line from the lowest failing rank (exit 2), or the totals over every rank
// printed by rank 0 (exit 1 on mismatches). Every rank reaches it (errors are agreed inside the
// executors, or the same on every rank for bad options), so its collectives cannot hang.
int report(const RunOptions& o, MpiCommunicator& comm, const RunSetup& s, const RunResult& r, const std::string& failure) {
  double timeout = s.timeout;
  index_t first_failed = -comm.all_max(failure.empty() ? -comm.size() : -comm.rank(), timeout);
  if (first_failed < comm.size()) {
    if (first_failed == comm.rank())  // one write, as in shardalg.cpp's fail_with
      std::cerr << detail::concat("error (rank ", comm.rank(), "): ", failure, "\n") << std::flush;
    comm.all_max(0, timeout);  // a barrier: the launcher drops output once a process exits non-zero
    return 2;
  }
  index_t elements = comm.all_sum(r.check.elements, timeout), mismatches = comm.all_sum(r.check.mismatches, timeout);
  index_t sent = comm.all_sum(r.stats.bytes_sent, timeout), local = comm.all_sum(r.stats.bytes_local, timeout);
  index_t peak = comm.all_max(r.stats.peak_staging, timeout), rounds = comm.all_max(r.stats.rounds, timeout);
  double slowest[2] = {0, 0}, mine[2] = {r.prepare_seconds, r.seconds};
  MPI_Allreduce(mine, slowest, 2, MPI_DOUBLE, MPI_MAX, comm.comm());
  if (comm.rank() == 0) {
    if (s.lowered)
      std::cout << "program                    "
                << (s.collectives() ? detail::concat("collectives (", s.lowered->collectives->collectives(), " collective(s) on mesh-dim groups)")
                                    : "point-to-point (" + s.lowered->reason + ")")
                << "\n";
    std::cout << "processes                  " << comm.size() << "\n";
    if (!s.collectives()) std::cout << "transport                  " << (o.transport == "mpi" ? "MPI messages" : "shared memory") << "\n";
    std::cout << "bytes sent between ranks   " << sent << "\n";
    if (!s.collectives())  // the engine's own figures
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

// Validate, prepare, execute, report; each stage ends with every rank agreeing that none failed,
// so no rank waits in a collective that a failed one never reaches.
int run(const CLI::App& cmd, const RunOptions& o) {
  MpiSession session;
  MpiCommunicator comm;
  RunSetup setup;
  RunResult result;
  std::string failure = failure_of([&] { validate(cmd, o, comm, setup); });
  if (comm.all_max(failure_vote(failure, comm.rank()), setup.timeout) < 0)
    failure = failure_of([&] { result = prepare_and_execute(o, setup, comm); });
  return report(o, comm, setup, result, failure);
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Execute a reshard across MPI processes on generated data and verify every element");
  add_layout_options(*cmd, *o);
  cmd->add_option("--memory-limit", o->memory_limit, "Staging bytes per rank (0: no limit); large messages then move in rounds")
      ->capture_default_str()
      ->check(within(0, index_t{1} << 50));
  auto* lower = cmd->add_flag("--lower", o->lower, "Lower a one-mesh reshard and run its collectives on sub-communicators when they are cheaper");
  add_cost_options(*cmd, o->cost, lower);
  cmd->add_option("--seed", o->seed, "Seed of the generated data")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", o->repeat, "Run the reshard this many times, prepared once (the last line's seconds: the mean per run)")
      ->capture_default_str()
      ->check(within(1, 1000000));
  cmd->add_option("--timeout", o->timeout, "Seconds to wait for a peer before failing")->capture_default_str();
  cmd->add_option("--transport", o->transport,
                  "How the engine moves messages: mpi (MPI point-to-point, any ranks) or shared-memory (a /dev/shm segment per rank, "
                  "all ranks on one node)")
      ->capture_default_str();
  cmd->add_option("--shared-memory-capacity", o->shared_memory_capacity,
                  "Bytes of each rank's shared-memory segment (--transport shared-memory); larger reshards move in rounds")
      ->capture_default_str()
      ->check(within(4096, index_t{1} << 40, "and at least 128 bytes per rank"));
  cmd->callback([o, cmd, &exit_code] { exit_code = run(*cmd, *o); });
}

}  // namespace shardalg::cli
