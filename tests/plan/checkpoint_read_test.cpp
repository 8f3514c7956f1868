#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("docs/semantics.md section 11: saved [0,8) and [8,16), wanted offset 4 size 7") {
  std::vector<ChunkMeta> saved{{Dims{0}, Dims{8}}, {Dims{8}, Dims{8}}};
  std::vector<ChunkMeta> wanted{{Dims{4}, Dims{7}}};
  std::vector<ReadItem> expected{{0, 0, Dims{4}, Dims{0}, Dims{4}}, {0, 1, Dims{0}, Dims{4}, Dims{3}}};
  CHECK(read_items_pairwise(saved, wanted) == expected);
  CheckpointIndex index(saved);
  CHECK(index.read_items(wanted) == expected);
}

TEST_CASE("chunks that only touch do not overlap; zero-size chunks follow DCP's rule") {
  std::vector<ChunkMeta> saved{{Dims{0, 0}, Dims{4, 4}}, {Dims{4, 0}, Dims{4, 4}}, {Dims{2, 2}, Dims{0, 3}}};
  CheckpointIndex index(saved);
  // Touching at row 4 only: no overlap with chunk 0.
  CHECK(index.read_items({{Dims{4, 0}, Dims{2, 2}}}) == read_items_pairwise(saved, {{Dims{4, 0}, Dims{2, 2}}}));
  CHECK(index.read_items({{Dims{4, 0}, Dims{2, 2}}}).size() == 1);
  // A zero-size wanted chunk strictly inside a saved chunk overlaps it (length 0), as in DCP.
  std::vector<ChunkMeta> empty{{Dims{1, 1}, Dims{0, 2}}};
  CHECK(index.read_items(empty) == read_items_pairwise(saved, empty));
  CHECK(index.read_items(empty).size() == 1);
}

TEST_CASE("loading FSDP2+TP strided shards into a ZeRO-3 rank: items cover the wanted chunks exactly") {
  Dims shape{15, 8};
  TensorLayout saved_under(MeshLayout::parse("dp=2,tp=2", "_S(0,2),S(0)", shape));
  auto flat = std::make_shared<const ComposedFlatLayout>(
      std::vector<NamedMeshLayout>{{"w", MeshLayout::parse("dp=3", "R", shape)}}, "dp", FlatSchemeOptions{FlatScheme::zero3});
  TensorLayout load_under(flat, 0);
  CheckpointIndex index(saved_chunks(saved_under));
  CHECK(index.saved().size() == 4);
  for (index_t rank = 0; rank < 3; ++rank) {
    auto wanted = wanted_chunks(load_under, rank);
    auto items = index.read_items(wanted);
    CHECK(items == read_items_pairwise(index.saved(), wanted));
    index_t covered = 0, asked = 0;
    for (const ReadItem& item : items) covered += volume(item.lengths);
    for (const ChunkMeta& c : wanted) asked += volume(c.sizes);
    CHECK(covered == asked);
  }
}

TEST_CASE("bad chunks are named") {
  SHARDALG_CHECK_THROWS_CONTAINING(CheckpointIndex({{Dims{0}, Dims{4}}, {Dims{0, 0}, Dims{4, 4}}}), Error,
                                   "saved chunk 1 has offsets [0, 0] and sizes [4, 4]; expected 1 dims");
  CheckpointIndex index({{Dims{0}, Dims{4}}});
  SHARDALG_CHECK_THROWS_CONTAINING(index.read_items({{Dims{-1}, Dims{4}}}), Error, "wanted chunk 0 has a negative offset or size");
}
