#include "../test_support.hpp"

using namespace shardalg;

namespace {
// "a" [4] and "t" [2, 3] flattened by ZeRO-1/2 (alignment 1) over two ranks: a buffer of 10
// elements, windows [0, 5) and [5, 10); t occupies [4, 10).
std::shared_ptr<const ComposedFlatLayout> two_tensor_zero12() {
  DeviceMesh mesh = DeviceMesh::parse("dp=2");
  FlatSchemeOptions options{FlatScheme::zero12};
  options.alignment_factor = 1;
  return std::make_shared<const ComposedFlatLayout>(
      std::vector<NamedMeshLayout>{{"a", MeshLayout(mesh, parse_placements("R"), Dims{4})},
                                   {"t", MeshLayout(mesh, parse_placements("R"), Dims{2, 3})}},
      "dp", options);
}
}  // namespace

TEST_CASE("a flat tensor's pieces: global boxes at partition positions, with the tensor's strides") {
  TensorLayout t(two_tensor_zero12(), 1);
  CHECK(t.is_flat());
  CHECK(t.global_shape() == Dims{2, 3});
  // Rank 0's window [0, 5) holds t's flat element 0 at partition position 4.
  auto r0 = t.pieces(0);
  REQUIRE(r0.size() == 1);
  CHECK(r0[0].global == Box(Dims{0, 0}, Dims{1, 1}));
  CHECK(r0[0].local == Dims{4});
  // Rank 1's window [5, 10) holds t's flat elements [1, 6) from partition position 0.
  auto r1 = t.pieces(1);
  REQUIRE(r1.size() == 2);
  CHECK(r1[0].global == Box(Dims{0, 1}, Dims{1, 2}));
  CHECK(r1[0].local == Dims{0});
  CHECK(r1[1].global == Box(Dims{1, 0}, Dims{1, 3}));
  CHECK(r1[1].local == Dims{2});
  CHECK(r1[1].strides == Dims{3, 1});
  CHECK(r1[1].local_at(Dims{1, 2}) == Dims{4});
  CHECK(t.held_elements(0) == 1);
  CHECK(t.held_elements(1) == 5);
  CHECK(t.buffer_elements(1) == 5);  // the whole partition, shared with "a"
  CHECK(t.pieces(7).empty());        // not in the layout
}

TEST_CASE("ranks holding a box of a flat tensor: the windows covering its flat range") {
  TensorLayout t(two_tensor_zero12(), 1);
  CHECK(t.ranks_holding(Box(Dims{1, 0}, Dims{1, 1})) == std::vector<index_t>{1});
  CHECK(t.ranks_holding(Box(Dims{0, 0}, Dims{1, 3})) == std::vector<index_t>{0, 1});
  CHECK(t.ranks_holding(Box(Dims{0, 0}, Dims{0, 3})).empty());
  CHECK(t.single_holder());
}

TEST_CASE("ranks holding a box of a ZeRO-over-TP tensor: only the TP groups whose tiles meet it") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  auto flat = std::make_shared<const ComposedFlatLayout>(
      std::vector<NamedMeshLayout>{{"w", MeshLayout(mesh, parse_placements("R,S(0)"), Dims{4, 3})}}, "dp",
      FlatSchemeOptions{FlatScheme::zero3});
  TensorLayout w(flat, 0);
  // Rows [2, 4) are TP rank 1's (ranks 1 and 3); its 6 local elements split 3 + 3 over dp.
  CHECK(w.ranks_holding(Box(Dims{2, 0}, Dims{1, 3})) == std::vector<index_t>{1});
  CHECK(w.ranks_holding(Box(Dims{3, 0}, Dims{1, 1})) == std::vector<index_t>{3});
  CHECK(w.ranks_holding(Box(Dims{1, 2}, Dims{2, 1})) == std::vector<index_t>{1, 2});  // TP groups {0, 2} and {1, 3}
  // Each TP group flattens its own tile.
  auto pieces = w.pieces(3);
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].global == Box(Dims{3, 0}, Dims{1, 3}));
  CHECK(pieces[0].local == Dims{0});
}

TEST_CASE("a mesh layout's pieces are its tile's boxes with local coordinates") {
  TensorLayout m(MeshLayout::parse("dp=2", "_S(0,2)", Dims{8, 2}));
  auto pieces = m.pieces(1);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].global == Box(Dims{2, 0}, Dims{2, 2}));
  CHECK(pieces[1].global == Box(Dims{6, 0}, Dims{2, 2}));
  CHECK(pieces[1].local == Dims{2, 0});
  CHECK(m.addressing(1).base(pieces[1].local) == 4);
  CHECK_FALSE(m.is_flat());
}

TEST_CASE("flat layouts refuse Partial placements") {
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  SHARDALG_CHECK_THROWS_CONTAINING(
      ComposedFlatLayout({{"g", MeshLayout(mesh, parse_placements("R,P"), Dims{4})}}, "dp", FlatSchemeOptions{}), Error,
      "tensor 'g' has P(sum); flat partitions hold reduced values");
}

TEST_CASE("a model layout's ranks: every tensor's mesh devices, merged and ascending") {
  MeshLayout on_four = MeshLayout::parse("dp=4", "S(0)", Dims{8});
  MeshLayout on_three = MeshLayout::parse("dp=3", "R", Dims{5}, "6,2,9");
  ModelLayout model({{"a", DType::fp32, TensorLayout(on_four)}, {"b", DType::fp32, TensorLayout(on_three)}, {"c", DType::bf16, TensorLayout(on_four)}});
  CHECK(model.ranks() == std::vector<index_t>{0, 1, 2, 3, 6, 9});
  CHECK(model.buffer_count() == 3);
  SHARDALG_CHECK_THROWS_CONTAINING(ModelLayout({{"a", DType::fp32, TensorLayout(on_four)}, {"a", DType::fp32, TensorLayout(on_three)}}), Error,
                                   "tensor 'a' is listed twice");
}
