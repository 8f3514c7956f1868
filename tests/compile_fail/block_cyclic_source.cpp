// A BlockCyclic source coordinate past its mesh dim (MeshLayout's run-time rule): must not compile.
#include "shardalg/layout/static_layout.hpp"

using namespace shardalg;
namespace hana = boost::hana;

int main() {
  auto layout = make_static_layout(StaticMesh<StaticDim<"row", 2>>{}, hana::make_tuple(block_cyclic_c<0, 4, 2>), hana::make_tuple(int_c<8>));
  return static_cast<int>(layout.local_shape({0})[0]);
}
