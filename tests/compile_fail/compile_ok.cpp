// The compile-fail programs with their mistakes fixed: this must compile.
#include "shardalg/layout/static_layout.hpp"

using namespace shardalg;
namespace hana = boost::hana;
using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;

int main() {
  auto layout = make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2>, shard_c<0>), hana::make_tuple(int_c<8>));
  return static_cast<int>(layout.local_shape({0, 0})[0] + StaticMesh<StaticDim<"dp", 2>>::dim_index<"dp"> +
                          StaticMesh<StaticDim<"dp", 2>, StaticDim<"tp", 4>>::size - 11);
}
