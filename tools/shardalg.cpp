// The shardalg command-line program. Bad input exits with code 2 and one line naming the value.
#include <iostream>
#include <new>

#include <CLI/CLI.hpp>

#include "cli_support.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shardalg: the sharding and placement algebra of distributed training"};
  app.require_subcommand(1);
  shardalg::cli::add_slices_command(app);
  shardalg::cli::add_partition_command(app);
  shardalg::cli::add_groups_command(app);
  shardalg::cli::add_scale_command(app);
  shardalg::cli::add_plan_command(app);
  shardalg::cli::add_cost_command(app);
  shardalg::cli::add_demo_command(app);
  int exit_code = 0;  // set by commands whose outcome is not just success or bad input
  shardalg::cli::add_run_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const shardalg::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {  // a request whose answer does not fit in memory (every rank of a huge world)
    std::cerr << "error: out of memory: the request's answer does not fit in this machine's memory\n";
    return 2;
  }
  return exit_code;
}
