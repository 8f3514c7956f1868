#include <limits>

#include "../test_support.hpp"

using namespace shardalg;
using F = FlatFragment;

namespace {
std::vector<index_t> group_of(index_t w) { return iota_ranks(w); }
}  // namespace

TEST_CASE("ZeRO-3 per-parameter partitions (docs/semantics.md section 5)") {
  FlatLayout layout = zero3_layout(flat_tensors_from_numels({10, 6, 3}), group_of(4));
  CHECK(layout.partition_size() == 6);
  // Rank 0: first 3 of p0 at 0, first 2 of p1 at 3, first of p2 at 5.
  CHECK(layout.fragments(0) == std::vector<F>{{0, 0, 0, 3}, {1, 0, 3, 2}, {2, 0, 5, 1}});
  // Rank 3: element 9 of p0 only (the rest is padding).
  CHECK(layout.fragments(3) == std::vector<F>{{0, 9, 0, 1}});
  CHECK(layout.padding(3) == 5);
  FlatLayout tiny = zero3_layout(flat_tensors_from_numels({5}), group_of(8));
  CHECK(tiny.partition_size() == 1);
  for (index_t r = 5; r < 8; ++r) CHECK(tiny.fragments(r).empty());  // pure padding
  CHECK(tiny.padding(7) == 1);
}

TEST_CASE("ZeRO-3 sub-groups close when the per-rank size reaches sub_group_size") {
  FlatLayout layout = zero3_layout(flat_tensors_from_numels({10, 6, 3, 8}), group_of(4));  // P = 3, 2, 1, 2
  CHECK(zero3_sub_groups(layout, std::nullopt) == std::vector<Zero3SubGroup>{{0, 4, 0, 8}});
  CHECK(zero3_sub_groups(layout, 100) == std::vector<Zero3SubGroup>{{0, 4, 0, 8}});
  CHECK(zero3_sub_groups(layout, 4) == std::vector<Zero3SubGroup>{{0, 2, 0, 5}, {2, 2, 5, 3}});
  CHECK(zero3_sub_groups(layout, 3) == std::vector<Zero3SubGroup>{{0, 1, 0, 3}, {1, 2, 3, 3}, {3, 1, 6, 2}});
  SHARDALG_CHECK_THROWS_CONTAINING(zero3_sub_groups(layout, 0), Error, "sub_group_size 0 must be positive");
}

TEST_CASE("ZeRO-1/2 flat groups, alignment, paddings and fragments (docs/semantics.md section 6)") {
  FlatLayout layout = zero12_layout(flat_tensors_from_numels({10, 6, 3}), group_of(4));
  CHECK(layout.partition_size() == 6);
  CHECK(layout.fragments(0) == std::vector<F>{{0, 0, 0, 6}});
  CHECK(layout.fragments(1) == std::vector<F>{{0, 6, 0, 4}, {1, 0, 4, 2}});
  CHECK(layout.fragments(2) == std::vector<F>{{1, 2, 0, 4}, {2, 0, 4, 2}});
  CHECK(layout.fragments(3) == std::vector<F>{{2, 2, 0, 1}});
  std::vector<index_t> paddings;
  for (index_t r = 0; r < 4; ++r) paddings.push_back(layout.padding(r));
  CHECK(paddings == std::vector<index_t>{0, 0, 0, 5});
  FlatLayout five = zero12_layout(flat_tensors_from_numels({5}), group_of(8));
  CHECK(five.partition_size() == 2);
  paddings.clear();
  for (index_t r = 0; r < 8; ++r) paddings.push_back(five.padding(r));
  CHECK(paddings == std::vector<index_t>{0, 0, 1, 2, 2, 2, 2, 2});
  CHECK(zero12_layout(flat_tensors_from_numels({5}), group_of(8), 1).partition_size() == 1);
}

TEST_CASE("ZeRO-1/2 elastic reload re-aligns to the new group") {
  FlatLayout saved = zero12_layout(flat_tensors_from_numels({10, 6, 3}), group_of(4));
  FlatLayout reloaded = zero12_elastic(saved, group_of(3));
  CHECK(reloaded.buffer_size() == 24);
  CHECK(reloaded.partition_size() == 8);
  CHECK(reloaded.fragments(0) == std::vector<F>{{0, 0, 0, 8}});
  CHECK(reloaded.fragments(1) == std::vector<F>{{0, 8, 0, 2}, {1, 0, 2, 6}});
  CHECK(reloaded.fragments(2) == std::vector<F>{{2, 0, 0, 3}});
  CHECK(reloaded.padding(2) == 5);
  SHARDALG_CHECK_THROWS_CONTAINING(zero12_elastic(zero3_layout(flat_tensors_from_numels({4}), group_of(2)), group_of(3)), Error,
                                   "the saved layout is zero3");
}

TEST_CASE("bad flat inputs are errors naming the value") {
  SHARDALG_CHECK_THROWS_CONTAINING(flat_tensors_from_numels({10, 0}), Error, "numel 0 of param 1 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(zero3_layout(flat_tensors_from_numels({10}), {}), Error, "group is empty");
  SHARDALG_CHECK_THROWS_CONTAINING(zero12_layout(flat_tensors_from_numels({10}), group_of(2), 0), Error, "alignment factor 0");
  SHARDALG_CHECK_THROWS_CONTAINING(zero3_layout(flat_tensors_from_numels({10}), {0, 1, 1}), Error, "lists rank 1 twice");
  // Sizes past int64 name the parameter (or the total) that overflowed.
  const index_t max = std::numeric_limits<index_t>::max();
  SHARDALG_CHECK_THROWS_CONTAINING(zero3_layout(flat_tensors_from_numels({10, max}), group_of(4)), OverflowError,
                                   "zero3: param 'param1' (9223372036854775807 elements) padded for 4 ranks: int64 overflow");
  SHARDALG_CHECK_THROWS_CONTAINING(zero12_layout(flat_tensors_from_numels({max, 1}), group_of(4)), OverflowError,
                                   "zero12: params up to 'param1': int64 overflow");
  SHARDALG_CHECK_THROWS_CONTAINING(zero12_layout(flat_tensors_from_numels({max}), group_of(4)), OverflowError,
                                   "zero12: 9223372036854775807 elements aligned to 2 x 4 ranks: int64 overflow");
}

TEST_CASE("reconstruction takes each rank's valid elements (ZeRO-3 and ZeRO-1/2)") {
  for (bool zero3 : {true, false}) {
    FlatLayout layout = zero3 ? zero3_layout(flat_tensors_from_numels({10, 6, 3}), group_of(4))
                              : zero12_layout(flat_tensors_from_numels({10, 6, 3}), group_of(4));
    // Partitions written by scattering value 100*tensor + position; padding is -1.
    std::vector<std::vector<int>> partitions(4, std::vector<int>(static_cast<std::size_t>(layout.partition_size()), -1));
    for (index_t r = 0; r < 4; ++r)
      for (const FlatFragment& f : layout.fragments(r))
        for (index_t i = 0; i < f.numel; ++i)
          partitions[static_cast<std::size_t>(r)][static_cast<std::size_t>(f.partition_offset + i)] = static_cast<int>(100 * f.tensor + f.tensor_offset + i);
    for (std::size_t t = 0; t < 3; ++t) {
      auto tensor = layout.reconstruct<int>(t, [&](index_t r) { return std::span<const int>(partitions[static_cast<std::size_t>(r)]); });
      for (std::size_t i = 0; i < tensor.size(); ++i) CHECK(tensor[i] == static_cast<int>(100 * t + i));
    }
    std::vector<int> short_buffer(2);
    SHARDALG_CHECK_THROWS_CONTAINING(layout.reconstruct<int>(0, [&](index_t) { return std::span<const int>(short_buffer); }), Error,
                                     "has 2 elements, expected 6");
  }
}

TEST_CASE("iota_ranks lists 0..n-1 and rejects empty and oversized groups") {
  CHECK(iota_ranks(3) == std::vector<index_t>{0, 1, 2});
  SHARDALG_CHECK_THROWS_CONTAINING(iota_ranks(0), Error, "partition group size 0 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(iota_ranks(max_ranks + 1), Error, "partition group size 16777217 is over the limit 16777216");
}

TEST_CASE("whole tensors from shapes are named param0, param1, ...") {
  std::vector<FlatTensor> tensors = flat_tensors_from_shapes({Dims{2, 3}, Dims{5}});
  REQUIRE(tensors.size() == 2);
  CHECK(tensors[1].name == "param1");
  CHECK(tensors[0].numel() == 6);
  CHECK(tensors[0].tile == Tile::whole(Dims{2, 3}));
}
