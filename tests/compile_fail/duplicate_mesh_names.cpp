// Must not compile: two static mesh dims with the same name.
#include "shardalg/mesh/static_mesh.hpp"

using namespace shardalg;

int main() { return static_cast<int>(StaticMesh<StaticDim<"dp", 2>, StaticDim<"dp", 4>>::size); }
