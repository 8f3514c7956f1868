// Must not compile: a static mesh dim of size 0.
#include "shardalg/mesh/static_mesh.hpp"

int main() { return static_cast<int>(shardalg::StaticMesh<shardalg::StaticDim<"dp", 0>>::size); }
