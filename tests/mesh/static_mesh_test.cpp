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

// Slicing and flattening are computed on types (Boost.Hana over the dim list).
using Mesh3 = StaticMesh<StaticDim<"dp", 2>, StaticDim<"cp", 3>, StaticDim<"tp", 4>>;
static_assert(std::is_same_v<Mesh3::slice<"dp", "tp">, StaticMesh<StaticDim<"dp", 2>, StaticDim<"tp", 4>>>);
static_assert(std::is_same_v<Mesh3::slice<"cp">, StaticMesh<StaticDim<"cp", 3>>>);
static_assert(std::is_same_v<Mesh3::flatten<"dp_cp", "dp", "cp">, StaticMesh<StaticDim<"dp_cp", 6>, StaticDim<"tp", 4>>>);
static_assert(std::is_same_v<Mesh3::flatten<"cp_tp", "cp", "tp">, StaticMesh<StaticDim<"dp", 2>, StaticDim<"cp_tp", 12>>>);
static_assert(std::is_same_v<Mesh3::flatten<"all", "dp", "cp", "tp">, StaticMesh<StaticDim<"all", 24>>>);

TEST_CASE("static slices and flattens agree with DeviceMesh's") {
  DeviceMesh mesh = Mesh3::to_runtime();
  // Flattening adjacent dims keeps the row-major ranks: the very same run-time mesh.
  CHECK(Mesh3::flatten<"dp_cp", "dp", "cp">::to_runtime() == mesh.flatten({"dp", "cp"}));
  CHECK(Mesh3::flatten<"cp_tp", "cp", "tp">::to_runtime() == mesh.flatten({"cp", "tp"}));
  // A slice has the names and sizes of the run-time slice through any rank.
  for (index_t rank : {0, 5, 23}) {
    DeviceMesh sliced = mesh.slice({"dp", "tp"}, rank);
    CHECK(sliced.names() == Mesh3::slice<"dp", "tp">::to_runtime().names());
    CHECK(sliced.shape() == Mesh3::slice<"dp", "tp">::to_runtime().shape());
  }
  // A static layout composed on a flattened mesh answers like the run-time layout on it.
  namespace hana = boost::hana;
  auto layout = make_static_layout(Mesh3::flatten<"dp_cp", "dp", "cp">{}, hana::make_tuple(shard_c<0>, shard_c<1>), hana::make_tuple(int_c<13>, int_c<9>));
  MeshLayout runtime(mesh.flatten({"dp", "cp"}), parse_placements("S(0),S(1)"), Dims{13, 9});
  for (index_t rank = 0; rank < 24; ++rank) {
    auto coord = Mesh3::flatten<"dp_cp", "dp", "cp">::coordinate_of(rank);
    CHECK(Dims(layout.local_shape(coord)) == runtime.shard_info(rank).local_shape);
    CHECK(Dims(layout.global_offset(coord)) == runtime.shard_info(rank).global_offset);
  }
}
