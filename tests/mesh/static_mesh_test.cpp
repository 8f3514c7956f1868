#include "../test_support.hpp"

#include <boost/hana/size.hpp>
#include <boost/hana/type.hpp>

using namespace shardalg;

using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"cp", 1>, StaticDim<"tp", 2>>;

static_assert(Mesh::ndim == 3);
static_assert(Mesh::size == 8);
static_assert(Mesh::dim_index<"tp"> == 2);
static_assert(Mesh::coordinate_of(5) == std::array<index_t, 3>{2, 0, 1});
static_assert(decltype(boost::hana::size(Mesh::dims))::value == 3);

TEST_CASE("a static mesh converts to the same run-time mesh") {
  DeviceMesh mesh = Mesh::to_runtime();
  CHECK(mesh == DeviceMesh::parse("dp=4,cp=1,tp=2"));
  for (index_t rank = 0; rank < Mesh::size; ++rank) {
    auto coord = Mesh::coordinate_of(rank);
    CHECK(*mesh.coordinate_of(rank) == Dims(coord));
  }
}
