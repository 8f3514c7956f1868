// The shardalg command-line program. Bad input exits with code 2 and one line naming the value.
#include <mpi.h>

#include <chrono>
#include <exception>
#include <ios>
#include <iostream>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli_support.hpp"
#include "commands.hpp"
#include "mpi_launch.hpp"
#include "shardalg/storage/json_input.hpp"

namespace {
using shardalg::cli::rank_from_launcher;

// The launcher tears the job down at the first process that exits non-zero, so the silent
// processes must not exit before the reporting one has written its line: all meet in a barrier.
// A process that never arrives (it failed differently) releases the others after a minute.
void wait_for_the_reporting_process() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (!initialized) MPI_Init(nullptr, nullptr);
  MPI_Request barrier = MPI_REQUEST_NULL;
  MPI_Ibarrier(MPI_COMM_WORLD, &barrier);
  const auto deadline = shardalg::deadline_after(60);
  int arrived = 0;
  while (!arrived && std::chrono::steady_clock::now() < deadline) {
    MPI_Test(&barrier, &arrived, MPI_STATUS_IGNORE);
    if (!arrived) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (arrived) MPI_Finalize();
}

// Under an MPI launcher every process parses the same command line and meets the same errors:
// only the first reports, so that the error is one line. Messages from outside the library
// (CLI11's, the standard library's) echo values unescaped: the line is escaped here, and one
// longer than any the library writes is cut.
int fail_with(std::string_view message) {
  constexpr std::size_t longest_message = 1000;
  std::string line = shardalg::detail::escaped(message.substr(0, longest_message));
  if (message.size() > longest_message) line += shardalg::detail::concat("... (a message of ", message.size(), " characters)");
  // One write: under mpirun, the launcher's own messages would otherwise land inside the line.
  const std::optional<std::string_view> rank = rank_from_launcher();
  if (!rank || *rank == "0") std::cerr << shardalg::detail::concat("error: ", line, "\n") << std::flush;
  if (rank) wait_for_the_reporting_process();
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shardalg: the sharding and placement algebra of distributed training"};
  app.require_subcommand(1);
  shardalg::cli::add_slices_command(app);
  shardalg::cli::add_partition_command(app);
  shardalg::cli::add_groups_command(app);
  shardalg::cli::add_scale_command(app);
  shardalg::cli::add_plan_command(app);
  shardalg::cli::add_cost_command(app);
  int exit_code = 0;  // set by commands whose outcome is not just success or bad input
  shardalg::cli::add_compare_command(app, exit_code);
  shardalg::cli::add_demo_command(app, exit_code);
  shardalg::cli::add_run_command(app, exit_code);
  shardalg::cli::add_checkpoint_command(app, exit_code);
  // CLI11 reports a misspelled subcommand as a missing one; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; })) {
      known += (known.empty() ? "" : ", ") + command->get_name();
      found = found || command->check_name(argv[1]);
    }
    if (!found)
      return fail_with(shardalg::detail::concat("unknown subcommand '", shardalg::detail::echoed(argv[1]), "' (one of: ", known, ")"));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail_with(e.what());
  } catch (const shardalg::Error& e) {
    return fail_with(e.what());
  } catch (const std::bad_alloc&) {  // a request whose answer does not fit in memory (every rank of a huge world)
    return fail_with("out of memory: the request's answer does not fit in this machine's memory");
  } catch (const std::ios_base::failure& e) {
    return fail_with(shardalg::detail::concat("input/output error: ", e.what()));
  } catch (const nlohmann::json::exception& e) {  // JSON output of a name that is not UTF-8, say
    return fail_with(shardalg::detail::concat("JSON: ", shardalg::json_error_text(e)));
  } catch (const std::length_error& e) {
    return fail_with(shardalg::detail::concat("a size is too large for this machine: ", e.what()));
  } catch (const std::exception& e) {  // the one handler: nothing leaves main as an uncaught exception
    return fail_with(shardalg::detail::concat("unexpected failure: ", e.what()));
  } catch (...) {
    return fail_with("unexpected failure of an unknown kind");
  }
  return exit_code;
}
