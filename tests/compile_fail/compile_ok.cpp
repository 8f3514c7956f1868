// The compile-fail programs with their mistakes fixed: this must compile (and exit 0).
#include "shardalg/layout/static_layout.hpp"

using namespace shardalg;
namespace hana = boost::hana;
using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;

int main() {
  auto layout = make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2>, shard_c<0>), hana::make_tuple(int_c<8>));
  auto cyclic = make_static_layout(StaticMesh<StaticDim<"row", 2>>{}, hana::make_tuple(block_cyclic_c<0, 4, 1>), hana::make_tuple(int_c<8>));
  using Flat = StaticMesh<StaticDim<"dp", 2>, StaticDim<"cp", 2>, StaticDim<"tp", 2>>::flatten<"dp_cp", "dp", "cp">;
  return static_cast<int>(layout.local_shape({0, 0})[0] + StaticMesh<StaticDim<"dp", 2>>::dim_index<"dp"> +
                          StaticMesh<StaticDim<"dp", 2>, StaticDim<"tp", 4>>::size + cyclic.local_shape({0})[0] + Flat::size - 21);
}
