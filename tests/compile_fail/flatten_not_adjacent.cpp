// Flattening dims that are not adjacent would permute a static mesh's row-major ranks: must not compile.
#include "shardalg/mesh/static_mesh.hpp"

using namespace shardalg;

int main() {
  using Mesh = StaticMesh<StaticDim<"dp", 2>, StaticDim<"cp", 2>, StaticDim<"tp", 2>>;
  return static_cast<int>(Mesh::flatten<"dp_tp", "dp", "tp">::size);
}
