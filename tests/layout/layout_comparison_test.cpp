#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("comparison reports exactly the ranks whose holdings differ") {
  DeviceMesh mesh = DeviceMesh::parse("dp=3,tp=2");
  LayoutComparison result =
      compare_layouts(fsdp_over_tp_physical(mesh, "dp", "tp", Dims{7}), fsdp_over_tp_label(mesh, "dp", "tp", Dims{7}));
  CHECK_FALSE(result.equivalent());
  std::vector<index_t> differing;
  for (const RankHoldings& r : result.differences()) differing.push_back(r.rank);
  // n=7, T=2, D=3: physical tp=0 rows [0,4) -> 2,2,0; label: rows {0,1,4},{2,3,5},{6} then tp halves.
  CHECK(std::find(differing.begin(), differing.end(), mesh.rank_at(Dims{2, 0})) != differing.end());
  CHECK(result.ranks.size() == 6);
}

TEST_CASE("layouts on different meshes compare over the union of their ranks") {
  MeshLayout a(DeviceMesh({"dp"}, Dims{2}, {0, 1}), {Placement::shard(0)}, Dims{4});
  MeshLayout b(DeviceMesh({"dp"}, Dims{2}, {1, 2}), {Placement::shard(0)}, Dims{4});
  LayoutComparison result = compare_layouts(a, b);
  REQUIRE(result.ranks.size() == 3);
  CHECK_FALSE(result.ranks[0].same());  // rank 0 holds rows 0-1 in a, nothing in b
  CHECK(result.ranks[2].in_a.empty());
  SHARDALG_CHECK_THROWS_CONTAINING(compare_layouts(a, MeshLayout::parse("dp=2", "S(0)", Dims{5})), Error,
                                   "global shapes differ: [4] vs [5]");
}

TEST_CASE("the first difference names an element one tile holds and the other does not") {
  IndexMap strided;
  strided.append(0, 2);
  strided.append(4, 2);
  Tile rows_0_4(SmallVector<IndexMap, 4>{IndexMap::contiguous(0, 4)});
  Tile rows_strided(SmallVector<IndexMap, 4>{strided});
  std::optional<TileDifference> d = first_difference(rows_0_4, rows_strided);
  REQUIRE(d);
  CHECK(d->held_by_a);
  CHECK(d->element == Dims{2});
  CHECK(d->local_position == 2);
  d = first_difference(rows_strided, rows_0_4);  // the other way round: a's own extra row comes first
  REQUIRE(d);
  CHECK(d->held_by_a);
  CHECK(d->element == Dims{4});
  CHECK(d->local_position == 2);
  d = first_difference(Tile(SmallVector<IndexMap, 4>{IndexMap::contiguous(0, 2)}), rows_0_4);  // a inside b: b's extra
  REQUIRE(d);
  CHECK_FALSE(d->held_by_a);
  CHECK(d->element == Dims{2});
  CHECK(d->local_position == 2);
  // A dim that matches, then one that does not: the element takes the holder's first rows.
  Tile a(SmallVector<IndexMap, 4>{IndexMap::contiguous(3, 2), IndexMap::contiguous(0, 4)});
  Tile b(SmallVector<IndexMap, 4>{IndexMap::contiguous(3, 2), strided});
  d = first_difference(b, a);
  REQUIRE(d);
  CHECK(d->held_by_a);
  CHECK(d->element == Dims{3, 4});
  CHECK(d->local_position == 2);  // row 3 is b's first, column 4 its third
  d = first_difference(a, b);
  REQUIRE(d);
  CHECK(d->held_by_a);
  CHECK(d->element == Dims{3, 2});
  CHECK_FALSE(first_difference(a, a));
  // Nothing equals nothing however it is empty; nothing against something names the first element.
  Tile empty_rows(SmallVector<IndexMap, 4>{IndexMap(), IndexMap::contiguous(0, 4)});
  CHECK_FALSE(first_difference(empty_rows, Tile::nothing(2)));
  d = first_difference(Tile::nothing(2), b);
  REQUIRE(d);
  CHECK(d->element == Dims{3, 0});
  CHECK(d->local_position == 0);
  CHECK(first_difference(Tile::nothing(0), Tile::whole(Dims{}))->element == Dims{});
  SHARDALG_CHECK_THROWS_CONTAINING(first_difference(a, rows_0_4), Error, "tiles of 2 and 1 dims");
}
