#include "commands.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"

namespace shardalg::cli {
namespace {

struct SlicesOptions {
  std::string mesh = "dp=4,tp=2";
  std::string placements = "_S(0,2),S(0)";
  std::string shape = "14336,4096";
  std::string devices;
  std::string shard_order;
  index_t stack = -1;
  std::string svg;
  bool json = false, strict = false;
};

MeshLayout build_layout(const SlicesOptions& options) {
  return layout_from(DeviceMesh::parse(options.mesh, options.devices), parse_placements(options.placements), parse_shape(options.shape),
                     options.shard_order, options.stack, "--stack");
}

std::array<std::string, 5> table_row(const RankSlice& slice) {
  return {std::to_string(slice.rank), to_string(slice.coordinate), to_string(slice.info.local_shape), to_string(slice.info.global_offset),
          format_tile(slice.tile)};
}

// The table is computed twice, once for the column widths and once to print: memory stays that
// of one rank's slice whatever the mesh size.
void print_table(const MeshLayout& layout) {
  const DeviceMesh& mesh = layout.mesh();
  std::cout << "mesh        " << mesh.to_string() << "\n"
            << "placements  " << format_placements(layout.placements()) << "\n"
            << "shape       " << layout.global_shape() << "\n";
  if (layout.application_order()) std::cout << "shard order " << format_shard_order(*layout.application_order()) << "\n";
  std::cout << "replication " << layout.replication_factor() << "\n\n";
  const std::vector<index_t> positions = positions_by_rank(mesh);
  Columns<5> table{{6, 16, 18, 18}};
  const std::array<std::string, 5> header = {"rank", coordinate_heading(mesh), "local shape", "global offset", "global boxes (local order)"};
  table.widen(header);
  for (index_t position : positions) table.widen(table_row(SliceMap::slice_at(layout, position)));
  table.print(header);
  for (index_t position : positions) table.print(table_row(SliceMap::slice_at(layout, position)));
}

// Streamed rank by rank.
void print_json(const MeshLayout& layout) {
  const DeviceMesh& mesh = layout.mesh();
  std::string mesh_head = nlohmann::ordered_json{{"names", mesh.names()}, {"shape", to_json(mesh.shape())}}.dump();
  mesh_head.pop_back();  // its closing brace: the devices, streamed, come next
  std::cout << "{\"mesh\":" << mesh_head << ",\"devices\":";
  write_json_array(std::cout, mesh.devices());
  std::cout << "},\"ranks\":[";
  bool first = true;
  for (index_t position : positions_by_rank(mesh)) {
    RankSlice slice = SliceMap::slice_at(layout, position);
    std::cout << (first ? "" : ",")
              << nlohmann::ordered_json{{"rank", slice.rank},
                                        {"coord", to_json(slice.coordinate)},
                                        {"local_shape", to_json(slice.info.local_shape)},
                                        {"global_offset", to_json(slice.info.global_offset)},
                                        {"boxes", tile_json(slice.tile)}}
                     .dump();
    first = false;
  }
  std::cout << "]}\n";
}

// The global tensor (its first two dims; a 1-d tensor as one row) with each replica group's
// boxes in one color, labelled with the group's ranks.
void write_svg(const MeshLayout& layout, const std::string& path) {
  const Dims& shape = layout.global_shape();
  index_t rows = shape.size() >= 2 ? shape[0] : 1;
  index_t cols = shape.empty() ? 1 : shape[shape.size() >= 2 ? 1 : 0];
  const double width = 800.0;
  const double height = std::clamp(width * static_cast<double>(rows) / static_cast<double>(std::max<index_t>(cols, 1)), 40.0, 800.0);
  const double sx = width / static_cast<double>(std::max<index_t>(cols, 1));
  const double sy = height / static_cast<double>(std::max<index_t>(rows, 1));
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(2);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width + 20 << "\" height=\"" << height + 60
      << "\" font-family=\"monospace\" font-size=\"12\">\n";
  svg << "<text x=\"10\" y=\"16\">" << format_placements(layout.placements()) << " on " << layout.mesh().spec_string()
      << ", shape " << shape << "</text>\n<g transform=\"translate(10,30)\">\n";
  svg << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"#eee\" stroke=\"#000\"/>\n";
  auto groups = layout.replica_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    Tile tile = layout.tile(groups[g].front());
    double hue = 360.0 * static_cast<double>(g) / static_cast<double>(groups.size());
    std::string label = "r";
    for (std::size_t i = 0; i < groups[g].size(); ++i) label += (i ? "," : "") + std::to_string(groups[g][i]);
    for (const Box& box : tile.boxes()) {
      double y = shape.size() >= 2 ? static_cast<double>(box.offset[0]) * sy : 0.0;
      double h = shape.size() >= 2 ? static_cast<double>(box.shape[0]) * sy : height;
      std::size_t col_dim = shape.size() >= 2 ? 1 : 0;
      double x = shape.empty() ? 0.0 : static_cast<double>(box.offset[col_dim]) * sx;
      double w = shape.empty() ? width : static_cast<double>(box.shape[col_dim]) * sx;
      svg << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << h << "\" fill=\"hsl(" << hue
          << ",70%,70%)\" stroke=\"#333\" stroke-width=\"0.5\"><title>" << label << ": " << format_box(box)
          << "</title></rect>\n";
      svg << "<text x=\"" << x + 2 << "\" y=\"" << y + std::min(h, 14.0) << "\">" << label << "</text>\n";
    }
  }
  svg << "</g>\n</svg>\n";
  std::ofstream file(path);
  if (!file) detail::fail("--svg: cannot write '", path, "'");
  file << svg.str();
  if (!file) detail::fail("--svg: error writing '", path, "'");
}

}  // namespace

void add_slices_command(CLI::App& app) {
  auto options = std::make_shared<SlicesOptions>();
  CLI::App* cmd = app.add_subcommand("slices", "Which global elements every rank holds under a mesh layout (PyTorch DTensor semantics)");
  cmd->add_option("--mesh", options->mesh, "Mesh dims and sizes, e.g. dp=4,tp=2")->capture_default_str();
  cmd->add_option("--placements", options->placements, "One placement per mesh dim: R, S(d), _S(d,sf), P(op) or repr forms")
      ->capture_default_str();
  cmd->add_option("--shape", options->shape, "Global tensor shape, e.g. 15,5")->capture_default_str();
  cmd->add_option("--devices", options->devices,
                  "Ranks of the mesh: XLA form [8]<=[2,4]T(1,0), [dims]:[r0,...], or r0,r1,... (default: row-major 0..N-1)");
  cmd->add_option("--shard-order", options->shard_order,
                  "Apply Shard placements in this order per tensor dim, e.g. \"0:[tp,dp]\" (FSDP2-over-TP's physical layout); "
                  "tensor dims left out keep left to right");
  add_stack_option(*cmd, "--stack", options->stack, "");
  add_strict_option(*cmd, options->strict);
  cmd->add_flag("--json", options->json, "Print JSON instead of a table");
  cmd->add_option("--svg", options->svg, "Also draw the first two tensor dims, colored by owning ranks, into this SVG file");
  cmd->callback([options] {
    MeshLayout layout = build_layout(*options);
    std::vector<std::string> warnings;
    add_lint_warnings(warnings, layout, options->strict, "layout");
    if (!options->svg.empty()) write_svg(layout, options->svg);  // first: a path it cannot write fails alone
    if (options->json) print_json(layout);
    else print_table(layout);
    print_warnings(warnings);
  });
}

}  // namespace shardalg::cli
