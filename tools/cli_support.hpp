// What the shardalg command-line program's commands share.
#pragma once

#include <algorithm>
#include <iomanip>
#include <array>
#include <charconv>
#include <cmath>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>
#include <span>
#include <string_view>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "shardalg/shardalg.hpp"

namespace shardalg::cli {

// Reads "15,5" (or "15x5"); every extent a non-negative integer.
inline Dims parse_shape(std::string_view text) {
  detail::Scanner in(text, "shape");
  Dims shape;
  if (in.at_end()) in.fail_here("expected at least one extent");
  do {
    index_t extent = in.integer();
    if (extent < 0) detail::fail<ParseError>("shape '", text, "': extent ", extent, " is negative");
    shape.push_back(extent);
  } while (in.accept(",") || in.accept("x"));
  in.expect_end();
  volume(shape);  // element count must fit in int64
  return shape;
}

// Reads "10,6,3": positive or non-negative integers (`what` names the option in errors).
inline std::vector<index_t> parse_integer_list(std::string_view text, std::string_view what) {
  detail::Scanner in(text, what);
  std::vector<index_t> values;
  if (in.at_end()) in.fail_here("expected at least one integer");
  do values.push_back(in.integer());
  while (in.accept(","));
  in.expect_end();
  return values;
}

// Reads "2x5,6,3": one shape per tensor, extents separated by 'x'.
inline std::vector<Dims> parse_shape_list(std::string_view text) {
  std::vector<Dims> shapes;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string_view one = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    detail::Scanner in(one, "shape");
    Dims shape;
    do {
      index_t extent = in.integer();
      if (extent <= 0) detail::fail<ParseError>("shapes '", text, "': extent ", extent, " must be positive");
      shape.push_back(extent);
    } while (in.accept("x"));
    in.expect_end();
    shapes.push_back(shape);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return shapes;
}

// An integer option's stated range: shown in --help, and a value outside it is refused naming
// the range (and `why`, when the range has a reason beyond sense). Values that are not integers
// are left to the option's conversion, which names them.
// Example: ->check(within(1, max_ranks)) on --world refuses 0 with "--world: 0 is outside its
// range [1, 16777216]".
inline CLI::Validator within(index_t low, index_t high, std::string why = {}) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        index_t value = 0;
        auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        bool too_large = error == std::errc::result_out_of_range;
        if (!too_large && (error != std::errc() || end != text.data() + text.size() || (value >= low && value <= high))) return {};
        return detail::concat(too_large ? detail::echoed(text) : std::to_string(value), " is outside its range [", low, ", ", high, "]",
                              why.empty() ? "" : "; ", why);
      },
      detail::concat("in [", low, ", ", high, "]"));
}

// Error unless every option given on the command line is among `allowed` for this choice.
inline void require_applicable(const CLI::App& cmd, const std::vector<std::string>& optional_flags,
                               const std::vector<std::string>& allowed, std::string_view choice) {
  for (const std::string& flag : optional_flags)
    if (cmd.count(flag) > 0 && std::find(allowed.begin(), allowed.end(), flag) == allowed.end())
      detail::fail("option ", flag, " does not apply to ", choice);
}

// A byte total (summed in double, so that plans of any size add up) as a JSON number: an integer
// while int64 holds it, else the double itself (std::llround would return an unspecified value).
// Example: byte_count(4096.0) prints 4096; byte_count(2e19) prints 2e+19.
inline nlohmann::ordered_json byte_count(double bytes) {
  constexpr double int64_limit = 9223372036854775808.0;  // 2^63
  if (bytes > -int64_limit && bytes < int64_limit) return std::llround(bytes);
  return bytes;
}

// Writes integers as a JSON array ("[0,1,2]", as nlohmann's dump writes it) straight to `out`:
// listings of every rank stream rather than build a document.
template <class Integers>
void write_json_array(std::ostream& out, const Integers& values) {
  out << '[';
  bool first = true;
  for (index_t v : values) {
    if (!first) out << ',';
    out << v;
    first = false;
  }
  out << ']';
}

inline nlohmann::ordered_json to_json(const Dims& dims) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (index_t v : dims) array.push_back(v);
  return array;
}

// The layout of a tensor of global shape `shape`. With `stack` >= 0 the placements (and shard
// order) were written for one of `stack` stacked weights (TransformerEngine's GroupedLinear
// stacks num_gemms [out, in] weights into [num_gemms, out, in]): they apply to the shape without
// its leading dim, which must be `stack`, and MeshLayout::stack moves them one dim in. `flag`
// names the stack option in errors.
// Example: shape 4,6,3, placements S(0), stack 4 -> S(1) on [4,6,3].
inline MeshLayout layout_from(const DeviceMesh& mesh, const std::vector<Placement>& placements, const Dims& shape,
                              const std::string& shard_order, index_t stack, std::string_view flag) {
  Dims weight = shape;
  if (stack >= 0) {
    if (shape.empty() || shape[0] != stack)
      detail::fail(flag, " ", stack, ": the shape ", shape, " is the stacked tensor's, so its leading extent must be ", stack);
    weight = Dims(std::span<const index_t>(shape.begin() + 1, shape.end()));
  }
  if (shard_order.empty()) return stack >= 0 ? MeshLayout(mesh, placements, weight).stack(stack) : MeshLayout(mesh, placements, weight);
  // A strided label given with its shard order stands for the bytes: its Shard placements applied
  // in that order (FSDP2 over TP: "_S(0,2),S(0)" with "0:[tp,dp]"). Its split factors must be the
  // ones the order implies (placements_from_shard_order), or the two describe different layouts.
  std::vector<Placement> shards = placements;
  for (Placement& p : shards)
    if (p.is_strided_shard()) p = Placement::shard(p.dim());
  MeshLayout layout(mesh, shards, weight, parse_shard_order(shard_order, mesh.names()));
  if (shards != placements) {
    std::vector<Placement> label = placements_from_shard_order(mesh.shape(), *layout.application_order());
    if (label != placements)
      detail::fail("shard order ", shard_order, ": placements ", format_placements(placements), " are not its strided label ",
                   format_placements(label), " (give Shard placements with a shard order, or the label it implies)");
  }
  return stack >= 0 ? layout.stack(stack) : layout;
}

// The option that stacks a layout's placements (see layout_from); absent, -1.
inline CLI::Option* add_stack_option(CLI::App& cmd, const std::string& flag, index_t& stack, const std::string& of) {
  return cmd.add_option(flag, stack,
                        "The placements" + of + " are those of one of K stacked weights: they apply to the shape without its "
                        "leading dim K and shift one dim in (TransformerEngine GroupedLinear)")
      ->check(within(0, index_t{1} << 40));
}

// Mesh positions in the order of the ranks they hold: listings go by rank, one slice at a time.
inline std::vector<index_t> positions_by_rank(const DeviceMesh& mesh) {
  std::vector<index_t> positions(static_cast<std::size_t>(mesh.size()));
  for (std::size_t p = 0; p < positions.size(); ++p) positions[p] = static_cast<index_t>(p);
  const std::vector<index_t>& devices = mesh.devices();
  std::sort(positions.begin(), positions.end(),
            [&](index_t a, index_t b) { return devices[static_cast<std::size_t>(a)] < devices[static_cast<std::size_t>(b)]; });
  return positions;
}

// A tile's global boxes in local order, two spaces apart; "(nothing)" when empty.
inline std::string format_tile(const Tile& tile) {
  std::string boxes;
  for (const Box& box : tile.boxes()) boxes += (boxes.empty() ? "" : "  ") + format_box(box);
  return boxes.empty() ? "(nothing)" : boxes;
}

// A tile's global boxes in local order, as JSON.
inline nlohmann::ordered_json tile_json(const Tile& tile) {
  nlohmann::ordered_json boxes = nlohmann::ordered_json::array();
  for (const Box& box : tile.boxes()) boxes.push_back({{"offset", to_json(box.offset)}, {"shape", to_json(box.shape)}});
  return boxes;
}

// Lint findings about a layout (lint_layout) as warning lines naming `which` layout and the
// kind, added to `warnings`; with `strict` the first finding is the error instead (exit code 2).
// Commands print the warnings after their output (print_warnings), so that a command that fails
// still reports one line.
inline void add_lint_warnings(std::vector<std::string>& warnings, const MeshLayout& layout, bool strict, std::string_view which) {
  for (const LintFinding& finding : lint_layout(layout)) {
    if (strict) detail::fail(which, " (", finding.kind, ", an error under --strict): ", finding.message);
    warnings.push_back(detail::concat("warning: ", which, " (", finding.kind, "): ", finding.message));
  }
}

inline void print_warnings(const std::vector<std::string>& warnings) {
  for (const std::string& warning : warnings) std::cerr << warning << "\n";
}

inline void add_strict_option(CLI::App& cmd, bool& strict) {
  cmd.add_flag("--strict", strict,
               "Make lint findings errors: empty shards on some ranks, strided placements that express no shard order, a strided label "
               "that is not the bytes of its shard order");
}

// "coord (dp,tp)": the heading of a column of mesh coordinates.
inline std::string coordinate_heading(const DeviceMesh& mesh) {
  std::string heading = "coord (";
  for (std::size_t d = 0; d < mesh.ndim(); ++d) heading += (d ? "," : "") + mesh.name(d);
  return heading + ")";
}

// A table of N columns, each as wide as its widest entry plus two spaces (at least its minimum),
// the last unpadded. Rank listings pass their rows twice, to widen then to print, so that memory
// stays one row whatever the mesh size (and huge extents stay apart).
template <std::size_t N>
struct Columns {
  std::array<std::size_t, N - 1> widths;

  void widen(const std::array<std::string, N>& row) {
    for (std::size_t c = 0; c + 1 < N; ++c) widths[c] = std::max(widths[c], row[c].size() + 2);
  }
  void print(const std::array<std::string, N>& row) const {
    std::cout << std::left;
    for (std::size_t c = 0; c + 1 < N; ++c) std::cout << std::setw(static_cast<int>(widths[c])) << row[c];
    std::cout << row[N - 1] << "\n";
  }
};

}  // namespace shardalg::cli
