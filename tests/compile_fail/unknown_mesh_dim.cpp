// Must not compile: asking a static mesh for a dim it does not have.
#include "shardalg/mesh/static_mesh.hpp"

using namespace shardalg;

int main() { return static_cast<int>(StaticMesh<StaticDim<"dp", 2>>::dim_index<"tp">); }
