#include <array>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"

namespace shardalg::cli {
namespace {

struct CompareOptions {
  std::string mesh, devices, shape, a, b, a_shard_order, b_shard_order;
  index_t a_stack = -1, b_stack = -1;
  bool json = false, strict = false;
};

// The differing ranks a table names before it only counts them.
constexpr std::size_t listed_differences = 16;

std::string difference_text(const TileDifference& d) {
  return detail::concat("element ", d.element, " is held under ", d.held_by_a ? "a" : "b", " (local position ", d.local_position,
                        ") and not under ", d.held_by_a ? "b" : "a");
}

std::string layout_line(const MeshLayout& layout) {
  std::string line = format_placements(layout.placements());
  if (layout.application_order()) line += "  shard order " + format_shard_order(*layout.application_order());
  return line;
}

// Rank by rank, streamed: memory stays that of one rank's tiles whatever the mesh size. Returns
// whether every rank holds the same elements.
bool print_table(const MeshLayout& a, const MeshLayout& b) {
  const DeviceMesh& mesh = a.mesh();
  std::cout << "mesh   " << mesh.to_string() << "\nshape  " << a.global_shape() << "\na      " << layout_line(a) << "\nb      "
            << layout_line(b) << "\n\n";
  const std::vector<index_t> positions = positions_by_rank(mesh);
  // A rank's cells and difference, from its two tiles (computed twice per rank: once to size the
  // columns, once to print, so that memory stays one rank's).
  struct Row {
    std::array<std::string, 5> cells;
    std::optional<TileDifference> difference;
  };
  auto row = [&](index_t position) {
    Dims coord = row_major_coordinate(mesh.shape(), position);
    Tile in_a = a.tile_at(coord), in_b = b.tile_at(coord);
    std::optional<TileDifference> difference = first_difference(in_a, in_b);
    return Row{{std::to_string(mesh.devices()[static_cast<std::size_t>(position)]), to_string(coord), format_tile(in_a), format_tile(in_b),
                difference ? "no" : "yes"},
               std::move(difference)};
  };
  const std::array<std::string, 5> header{"rank", coordinate_heading(mesh), "a", "b", "same"};
  Columns<5> table{{6, 8, 8, 8}};
  table.widen(header);
  for (index_t position : positions) table.widen(row(position).cells);
  table.print(header);
  std::vector<index_t> differing;
  std::size_t differing_count = 0;
  std::string example;
  for (index_t position : positions) {
    Row r = row(position);
    table.print(r.cells);
    if (r.difference) {
      index_t rank = mesh.devices()[static_cast<std::size_t>(position)];
      if (example.empty()) example = detail::concat("rank ", rank, ": ", difference_text(*r.difference));
      if (differing.size() < listed_differences) differing.push_back(rank);
      ++differing_count;
    }
  }
  if (differing_count == 0) {
    std::cout << "\nequivalent: every rank holds the same elements under a and b\n";
    return true;
  }
  std::cout << "\nnot equivalent: " << differing_count << " of " << positions.size() << " ranks differ (";
  for (std::size_t i = 0; i < differing.size(); ++i) std::cout << (i ? ", " : "") << differing[i];
  std::cout << (differing_count > differing.size() ? ", ...)" : ")") << "\ne.g. " << example << "\n";
  return false;
}

bool print_json(const MeshLayout& a, const MeshLayout& b) {
  const DeviceMesh& mesh = a.mesh();
  auto layout_json = [](const MeshLayout& layout) {
    nlohmann::ordered_json out{{"placements", format_placements(layout.placements())}};
    if (layout.application_order()) out["shard_order"] = format_shard_order(*layout.application_order());
    return out;
  };
  std::cout << "{\"mesh\":" << nlohmann::json(mesh.spec_string()).dump() << ",\"shape\":" << to_json(a.global_shape()).dump()
            << ",\"a\":" << layout_json(a).dump() << ",\"b\":" << layout_json(b).dump() << ",\"ranks\":[";
  std::size_t differing = 0;
  bool first = true;
  for (index_t position : positions_by_rank(mesh)) {
    Dims coord = row_major_coordinate(mesh.shape(), position);
    Tile in_a = a.tile_at(coord), in_b = b.tile_at(coord);
    std::optional<TileDifference> difference = first_difference(in_a, in_b);
    nlohmann::ordered_json rank{{"rank", mesh.devices()[static_cast<std::size_t>(position)]},
                                {"coord", to_json(coord)},
                                {"a", tile_json(in_a)},
                                {"b", tile_json(in_b)},
                                {"same", !difference}};
    if (difference)
      rank["difference"] = {{"element", to_json(difference->element)}, {"held_by", difference->held_by_a ? "a" : "b"},
                            {"local_position", difference->local_position}};
    std::cout << (first ? "" : ",") << rank.dump();
    first = false;
    differing += difference ? 1 : 0;
  }
  std::cout << "],\"differing_ranks\":" << differing << ",\"equivalent\":" << (differing == 0 ? "true" : "false") << "}\n";
  return differing == 0;
}

}  // namespace

void add_compare_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "Whether two layouts of one tensor on one mesh hold the same elements on every rank (exit 0: yes, 1: no, 2: bad input)");
  cmd->add_option("--mesh", o->mesh, "Mesh dims and sizes, e.g. dp=3,tp=2")->required();
  cmd->add_option("--devices", o->devices, "Ranks of the mesh (XLA form or list; default row-major 0..N-1)");
  cmd->add_option("--shape", o->shape, "Global shape of the tensor, e.g. 7,4 (with a stack option, the stacked tensor's)")->required();
  cmd->add_option("--a", o->a, "Placements of layout a, e.g. \"_S(0,2),S(0)\"")->required();
  cmd->add_option("--b", o->b, "Placements of layout b (default: those of a)");
  cmd->add_option("--a-shard-order", o->a_shard_order, "Layout a applies Shard placements in this order per tensor dim, e.g. \"0:[tp,dp]\"");
  cmd->add_option("--b-shard-order", o->b_shard_order, "Layout b applies Shard placements in this order per tensor dim");
  add_stack_option(*cmd, "--a-stack", o->a_stack, " of a");
  add_stack_option(*cmd, "--b-stack", o->b_stack, " of b");
  add_strict_option(*cmd, o->strict);
  cmd->add_flag("--json", o->json, "Print JSON: every rank's boxes under both, whether they are the same, and an element that differs");
  cmd->callback([o, &exit_code] {
    DeviceMesh mesh = DeviceMesh::parse(o->mesh, o->devices);
    Dims shape = parse_shape(o->shape);
    MeshLayout a = layout_from(mesh, parse_placements(o->a), shape, o->a_shard_order, o->a_stack, "--a-stack");
    MeshLayout b = layout_from(mesh, parse_placements(o->b.empty() ? o->a : o->b), shape, o->b_shard_order, o->b_stack, "--b-stack");
    std::vector<std::string> warnings;
    add_lint_warnings(warnings, a, o->strict, "layout a");
    add_lint_warnings(warnings, b, o->strict, "layout b");
    bool equivalent = o->json ? print_json(a, b) : print_table(a, b);
    print_warnings(warnings);
    exit_code = equivalent ? 0 : 1;
  });
}

}  // namespace shardalg::cli
