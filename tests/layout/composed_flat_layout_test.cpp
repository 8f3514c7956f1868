#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("ZeRO-3 over TP: fragments map through each TP rank's tile to global boxes") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  // A column-parallel weight [4, 3] (TP on dim 0) and a row-parallel one [2, 4] (TP on dim 1).
  ComposedFlatLayout layout({{"w1", MeshLayout(mesh, parse_placements("R,S(0)"), Dims{4, 3})},
                             {"w2", MeshLayout(mesh, parse_placements("R,S(1)"), Dims{2, 4})}},
                            "dp", FlatSchemeOptions{FlatScheme::zero3});
  FlatLayout tp1 = layout.flat_layout_of(3);  // dp=1, tp=1: group [1, 3]
  CHECK(tp1.group() == std::vector<index_t>{1, 3});
  CHECK(tp1.tensors()[0].shape == Dims{2, 3});
  auto fragments = tp1.fragments(3);  // position 1: w1 local [3,6), w2 local [2,4)
  REQUIRE(fragments.size() == 2);
  CHECK(tp1.global_boxes(fragments[0]) == std::vector<Box>{Box(Dims{3, 0}, Dims{1, 3})});
  CHECK(tp1.global_boxes(fragments[1]) == std::vector<Box>{Box(Dims{1, 2}, Dims{1, 2})});
}

TEST_CASE("every global element is held exactly once per TP-replica across the composed layout") {
  DeviceMesh mesh = DeviceMesh::parse("dp=3,tp=2");
  for (FlatScheme scheme : {FlatScheme::zero3, FlatScheme::zero12, FlatScheme::megatron}) {
    ComposedFlatLayout layout({{"a", MeshLayout(mesh, parse_placements("R,S(0)"), Dims{7, 5})},
                               {"b", MeshLayout(mesh, parse_placements("R,_S(1,2)"), Dims{3, 9})}},
                              "dp", FlatSchemeOptions{scheme});
    std::vector<std::vector<int>> count{std::vector<int>(35, 0), std::vector<int>(27, 0)};
    for (index_t rank : mesh.devices()) {
      FlatLayout flat = layout.flat_layout_of(rank);
      for (const FlatFragment& f : flat.fragments(rank))
        for (const Box& box : flat.global_boxes(f))
          for (index_t i = 0; i < box.volume(); ++i) {
            Dims p = row_major_coordinate(box.shape, i);
            for (std::size_t d = 0; d < p.size(); ++d) p[d] += box.offset[d];
            ++count[static_cast<std::size_t>(f.tensor)][static_cast<std::size_t>(row_major_position(flat.tensors()[static_cast<std::size_t>(f.tensor)].global_shape, p))];
          }
    }
    for (const auto& tensor : count)
      for (int c : tensor) CHECK(c == 1);
  }
}

TEST_CASE("the flat dim must replicate the tensors") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  SHARDALG_CHECK_THROWS_CONTAINING(
      ComposedFlatLayout({{"w", MeshLayout(mesh, parse_placements("S(0),S(1)"), Dims{4, 4})}}, "dp", FlatSchemeOptions{}), Error,
      "tensor 'w' has S(0) on the flat dim 'dp'");
  SHARDALG_CHECK_THROWS_CONTAINING(
      ComposedFlatLayout({{"w", MeshLayout(mesh, parse_placements("R,S(1)"), Dims{4, 4})}}, "ep", FlatSchemeOptions{}), Error,
      "has no dim named 'ep'");
}

TEST_CASE("a tensor without elements in some group is refused at construction, naming it and the group") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=4");
  // 3 rows split 4 ways: TP coordinate 3 holds nothing of 'w'.
  for (FlatScheme scheme : {FlatScheme::zero3, FlatScheme::zero12, FlatScheme::megatron})
    SHARDALG_CHECK_THROWS_CONTAINING(
        ComposedFlatLayout({{"v", MeshLayout(mesh, parse_placements("R,S(0)"), Dims{8, 2})},
                            {"w", MeshLayout(mesh, parse_placements("R,S(0)"), Dims{3, 2})}},
                           "dp", FlatSchemeOptions{scheme}),
        Error, "tensor 'w' of shape [3, 2] with placements (R, S(0)) holds no element at mesh coordinate [0, 3]");
  SHARDALG_CHECK_THROWS_CONTAINING(
      ComposedFlatLayout({{"empty", MeshLayout(mesh, parse_placements("R,R"), Dims{0, 2})}}, "dp", FlatSchemeOptions{}), Error,
      "tensor 'empty' of shape [0, 2]");
  // Through a recipe: the error comes from layout_model, before any plan.
  ModelSpec model{"m", {ModelTensor{"e", Dims{8, 4, 6}, TensorRole::expert_w1, DType::bf16}}};
  SHARDALG_CHECK_THROWS_CONTAINING(layout_model(model, "megatron-distopt dp=2,tp=12"), Error, "tensor 'e' of shape [8, 4, 6]");
  CHECK(layout_model(model, "megatron-distopt dp=2,tp=4").size() == 1);
}

TEST_CASE("flat scheme names print and parse from one table") {
  for (FlatScheme scheme : {FlatScheme::zero3, FlatScheme::zero12, FlatScheme::megatron}) CHECK(parse_flat_scheme(to_string(scheme)) == scheme);
  CHECK(to_string(FlatScheme::zero12) == "zero12");
  CHECK_THROWS_WITH_AS(parse_flat_scheme("zero9"), doctest::Contains("unknown flat scheme 'zero9'"), Error);
}
