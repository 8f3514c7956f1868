// Must not compile: see tests/CMakeLists.txt for the static_assert message it must stop at.
#include "shardalg/layout/static_layout.hpp"

using namespace shardalg;
namespace hana = boost::hana;
using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;

int main() {
  auto layout = make_static_layout(Mesh{}, hana::make_tuple(shard_c<0>), hana::make_tuple(int_c<8>));
  return static_cast<int>(layout.local_shape({0, 0})[0]);
}
