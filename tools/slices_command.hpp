// `shardalg slices`: the slice map of a mesh layout, as a table, JSON, or an SVG picture.
#pragma once

#include <CLI/CLI.hpp>

namespace shardalg::cli {

// Adds the subcommand to the program; it runs when the subcommand is given.
void add_slices_command(CLI::App& app);

}  // namespace shardalg::cli
