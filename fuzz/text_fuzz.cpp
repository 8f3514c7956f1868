// libFuzzer target: every text form shardalg reads from users (mesh specs, device lists,
// placements, shard orders, dtypes, layout recipes, flat scheme names, byte sizes, shapes and
// shape lists) and the layouts they build. The law: any input
// either parses or throws shardalg::Error; nothing else escapes (libFuzzer reports an uncaught
// exception, a crash or a sanitizer finding as a failure).
//
// Input: the first byte picks the parser; the rest is the text (for a layout: "mesh|placements|dims").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli_support.hpp"
#include "shardalg/core/byte_size.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/layout/mesh_layout.hpp"
#include "shardalg/mesh/device_mesh.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "shardalg/placement/placement_text.hpp"
#include "shardalg/placement/shard_order.hpp"

namespace {

using namespace shardalg;

// Shapes from text: comma-separated extents, each at most 64 (the fuzzer explores structure,
// not sizes: a layout's work grows with its extents).
Dims small_shape(std::string_view text) {
  Dims shape;
  index_t value = 0;
  for (char c : text) {
    if (c == ',') {
      shape.push_back(value % 65);
      value = 0;
    } else if (c >= '0' && c <= '9') {
      value = (value * 10 + (c - '0')) % 1000;
    }
  }
  if (!text.empty()) shape.push_back(value % 65);
  return shape;
}

void run(std::uint8_t which, std::string_view text) {
  switch (which % 11) {
    case 0: DeviceMesh::parse(text); break;
    case 1: DeviceMesh::parse("a=2,b=3", text); break;
    case 2: parse_placements(text); break;
    case 3: parse_shard_order(text); break;
    case 4: parse_dtype(text); break;
    case 5: {
      LayoutRecipe recipe = LayoutRecipe::parse(text);
      if (recipe.text.size() < 64) layout_model(ModelSpec{"tiny", {{"w", Dims{8, 6}, TensorRole::column_parallel}}}, text);
      break;
    }
    case 6: parse_flat_scheme(text); break;
    case 7: parse_byte_size(text, "size"); break;
    case 9: cli::parse_shape(text); break;
    case 10: cli::parse_shape_list(text); break;
    default: {  // 8: a layout, "mesh|placements|dims", every rank's tile
      auto first = text.find('|'), second = first == std::string_view::npos ? first : text.find('|', first + 1);
      if (second == std::string_view::npos) return;
      DeviceMesh mesh = DeviceMesh::parse(text.substr(0, first));
      if (mesh.size() > 64) return;
      MeshLayout layout(mesh, parse_placements(text.substr(first + 1, second - first - 1)), small_shape(text.substr(second + 1)));
      for (index_t rank : mesh.devices()) layout.tile(rank);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  try {
    run(data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } catch (const shardalg::Error&) {
  }
  return 0;
}
