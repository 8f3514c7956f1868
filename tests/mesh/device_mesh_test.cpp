#include "../test_support.hpp"

#include <unordered_set>

using namespace shardalg;
using Groups = std::vector<std::vector<index_t>>;

TEST_CASE("coordinates and ranks (row-major iota)") {
  DeviceMesh mesh({"a", "b", "c"}, Dims{2, 2, 2});
  CHECK(mesh.coordinate_of(5) == Dims{1, 0, 1});
  CHECK(mesh.rank_at(Dims{1, 0, 1}) == 5);
  CHECK_FALSE(mesh.coordinate_of(8).has_value());
  CHECK_FALSE(mesh.contains(-1));
  CHECK(mesh.size() == 8);
  CHECK(mesh.dim_index("c") == 2);
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.dim_index("tp"), Error, "has no dim named 'tp'");
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.rank_at(Dims{2, 0, 0}), Error, "outside mesh shape");
}

TEST_CASE("groups along a dim match PyTorch") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=4");
  CHECK(mesh.groups(0) == Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(mesh.groups(1) == Groups{{0, 1, 2, 3}, {4, 5, 6, 7}});
  CHECK(mesh.group_of(0, 6) == std::vector<index_t>{2, 6});
  // 3-d: PyTorch's swapdims(-1, dim).reshape(-1, size) order, not row-major over the other dims.
  DeviceMesh cube = DeviceMesh::parse("a=2,b=2,c=2");
  CHECK(cube.groups(0) == Groups{{0, 4}, {2, 6}, {1, 5}, {3, 7}});
  CHECK(cube.groups(1) == Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}});
  CHECK(cube.groups(2) == Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  DeviceMesh wide = DeviceMesh::parse("a=2,b=3,c=2");
  CHECK(wide.groups(0) == Groups{{0, 6}, {2, 8}, {4, 10}, {1, 7}, {3, 9}, {5, 11}});
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.group_of(0, 9), Error, "rank 9 is not in");
}

TEST_CASE("flatten: default names and PyTorch's groups") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,cp=2,tp=2");
  DeviceMesh dp_cp = mesh.flatten({"dp", "cp"});
  CHECK(dp_cp.names() == std::vector<std::string>{"dp_cp", "tp"});
  CHECK(dp_cp.groups(0) == Groups{{0, 2, 4, 6}, {1, 3, 5, 7}});
  CHECK(mesh.flatten({"cp", "tp"}).groups(1) == Groups{{0, 1, 2, 3}, {4, 5, 6, 7}});
  DeviceMesh dp_tp = mesh.flatten({"dp", "tp"}, "dense");
  CHECK(dp_tp.name(0) == "dense");
  CHECK(dp_tp.groups(0) == Groups{{0, 1, 4, 5}, {2, 3, 6, 7}});
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.flatten({"tp", "dp"}), Error, "out of mesh order");
}

TEST_CASE("unflatten splits row-major") {
  DeviceMesh world = DeviceMesh::parse("world=8");
  DeviceMesh cube = world.unflatten("world", Dims{2, 2, 2}, {"a", "b", "c"});
  CHECK(cube.coordinate_of(4) == Dims{1, 0, 0});  // stride 4
  CHECK(cube.coordinate_of(2) == Dims{0, 1, 0});  // stride 2
  CHECK(cube.coordinate_of(1) == Dims{0, 0, 1});  // stride 1
  CHECK(cube.flatten({"a", "b", "c"}, "world") == world);
  SHARDALG_CHECK_THROWS_CONTAINING(world.unflatten("world", Dims{3, 3}, {"a", "b"}), Error, "multiply to 9");
}

TEST_CASE("slice keeps the named dims through a rank") {
  DeviceMesh mesh = DeviceMesh::parse("pp=2,dp=2,tp=2");
  DeviceMesh dp_tp = mesh.slice({"dp", "tp"}, 5);
  CHECK(dp_tp.devices() == std::vector<index_t>{4, 5, 6, 7});
  CHECK(mesh.slice({"pp", "tp"}, 2).devices() == std::vector<index_t>{2, 3, 6, 7});
  CHECK(mesh.slice({"dp"}, 1).devices() == std::vector<index_t>{1, 3});
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.slice({"tp", "dp"}, 0), Error, "out of mesh order");
}

TEST_CASE("meshes over a subset or permutation of the world") {
  DeviceMesh mesh({"dp", "tp"}, Dims{2, 2}, {8, 10, 9, 11});
  CHECK(mesh.coordinate_of(9) == Dims{1, 0});
  CHECK_FALSE(mesh.contains(0));
  CHECK(mesh.groups(0) == Groups{{8, 9}, {10, 11}});
  CHECK(mesh.devices_string() == "[2,2]:[8,10,9,11]");
  DeviceMesh transposed = DeviceMesh::parse("dp=2,tp=2", "[4]<=[2,2]T(1,0)");
  CHECK(transposed.devices() == std::vector<index_t>{0, 2, 1, 3});
  CHECK(transposed.to_string() == "DeviceMesh(dp=2, tp=2, devices=[2,2]<=[2,2]T(1,0))");
  CHECK(transposed == DeviceMesh::parse("tp=2,dp=2").permute({"dp", "tp"}));
}

TEST_CASE("permute transposes the rank array") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  DeviceMesh swapped = mesh.permute({"tp", "dp"});
  CHECK(swapped.names() == std::vector<std::string>{"tp", "dp"});
  CHECK(swapped.devices() == std::vector<index_t>{0, 2, 1, 3});
  SHARDALG_CHECK_THROWS_CONTAINING(mesh.permute({"tp", "tp"}), Error, "named twice");
}

TEST_CASE("equality and hashing") {
  std::unordered_set<DeviceMesh> meshes;
  meshes.insert(DeviceMesh::parse("dp=4,tp=2"));
  meshes.insert(DeviceMesh::parse("dp=4,tp=2"));
  meshes.insert(DeviceMesh::parse("dp=4,tp=2", "[8]<=[2,4]T(1,0)"));
  meshes.insert(DeviceMesh::parse("dp=2,tp=4"));
  CHECK(meshes.size() == 3);
}

TEST_CASE("bad meshes are errors naming the value") {
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("dp=0"), Error, "mesh dim 'dp' has size 0");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("dp=2,dp=2"), Error, "'dp' appears twice");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("dp=2,tp"), ParseError, "mesh 'dp=2,tp': expected '='");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("2=dp"), ParseError, "expected a name");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh({"a"}, Dims{3}, {0, 1, 1}), Error, "rank 1 twice");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh({"a"}, Dims{2}, {0, -1}), Error, "negative rank -1");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("a=2,b=2", "[3]<=[3]"), Error, "has 4 ranks but device list");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("a=4294967296,b=4294967296"), OverflowError, "product of [4294967296, 4294967296]");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("a=65536,b=65536"), Error, "over the limit");
  SHARDALG_CHECK_THROWS_CONTAINING(DeviceMesh::parse("a=4096,b=4097"), Error, "mesh shape [4096, 4097] has 16781312 ranks, over the limit 16777216");
}

TEST_CASE("flattened groups: several mesh dims as one, row-major over the dims given (docs/semantics.md section 4)") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,cp=2,tp=2");
  CHECK(mesh.flattened_groups({0, 2}) == Groups{{0, 1, 4, 5}, {2, 3, 6, 7}});
  CHECK(mesh.flattened_groups({0, 1}) == Groups{{0, 2, 4, 6}, {1, 3, 5, 7}});
  CHECK(mesh.flattened_groups({2, 0}) == Groups{{0, 4, 1, 5}, {2, 6, 3, 7}});  // the order given is the flattening order
  CHECK(mesh.flattened_groups({}) == Groups{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}});
  // One dim: the same rank sets as groups(dim), led by coordinate 0.
  for (std::size_t d = 0; d < 3; ++d)
    for (const auto& group : mesh.flattened_groups({static_cast<index_t>(d)})) CHECK(group == mesh.group_of(d, group.front()));
  // A permuted device list: groups follow the ranks at the coordinates.
  DeviceMesh permuted = DeviceMesh::parse("a=2,b=2", "[2,2]<=[2,2]T(1,0)");
  CHECK(permuted.flattened_groups({1}) == Groups{{0, 2}, {1, 3}});
}
