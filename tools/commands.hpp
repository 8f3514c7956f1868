// The subcommands of the shardalg program. Each adds itself to the app and runs when given.
#pragma once

#include <CLI/CLI.hpp>

namespace shardalg::cli {

void add_slices_command(CLI::App& app);     // slice maps of mesh layouts
void add_partition_command(CLI::App& app);  // ZeRO-3, ZeRO-1/2 and Megatron flat partitions
void add_groups_command(CLI::App& app);     // process-group conventions
void add_scale_command(CLI::App& app);      // gradient-averaging scale factors
void add_plan_command(CLI::App& app);       // resharding plans, lowering, relabeling
void add_cost_command(CLI::App& app);       // communication volume and time of a plan
void add_compare_command(CLI::App& app, int& exit_code);  // whether two layouts hold the same elements on every rank
void add_demo_command(CLI::App& app, int& exit_code);  // the main job: a whole-model reshard planned, simulated, and done on a real checkpoint
void add_run_command(CLI::App& app, int& exit_code);  // a reshard executed across MPI processes, verified
void add_checkpoint_command(CLI::App& app, int& exit_code);  // real checkpoint folders: inspect, verify, read plans

}  // namespace shardalg::cli
