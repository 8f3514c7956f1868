#include "../test_support.hpp"

using namespace shardalg;
namespace hana = boost::hana;

using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;

// Everything static: local shapes and offsets are constant expressions.
constexpr auto fsdp_tp = make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2>, shard_c<0>),
                                            hana::make_tuple(int_c<15>, int_c<5>));
static_assert(decltype(fsdp_tp)::is_static);
static_assert(fsdp_tp.local_shape({0, 1}) == std::array<index_t, 2>{2, 5});
static_assert(fsdp_tp.global_offset({0, 1}) == std::array<index_t, 2>{8, 0});
static_assert(fsdp_tp.local_shape({3, 1}) == std::array<index_t, 2>{1, 5});
static_assert(fsdp_tp.global_offset({3, 1}) == std::array<index_t, 2>{14, 0});

constexpr auto uneven = make_static_layout(Mesh{}, hana::make_tuple(shard_c<0>, shard_c<1>), hana::make_tuple(int_c<6>, int_c<1>));
static_assert(uneven.local_shape({3, 1}) == std::array<index_t, 2>{0, 0});
static_assert(uneven.global_offset({3, 1}) == std::array<index_t, 2>{6, 1});  // empty: offset is the dim size

TEST_CASE("static and run-time layouts give equal answers") {
  auto check_agree = [](const auto& layout) {
    MeshLayout runtime = layout.to_runtime();
    for (index_t rank = 0; rank < Mesh::size; ++rank) {
      auto coord = Mesh::coordinate_of(rank);
      ShardInfo info = runtime.shard_info(rank);
      auto shape = layout.local_shape(coord);
      auto offset = layout.global_offset(coord);
      CHECK(Dims(shape) == info.local_shape);
      CHECK(Dims(offset) == info.global_offset);
    }
  };
  check_agree(fsdp_tp);
  check_agree(uneven);
  for (index_t n : {0, 1, 7, 13, 64}) {
    check_agree(make_static_layout(Mesh{}, hana::make_tuple(shard_c<0>, strided_shard_c<1, 3>), hana::make_tuple(n, index_t{11})));
    check_agree(make_static_layout(Mesh{}, hana::make_tuple(replicate_c, partial_c<>), hana::make_tuple(n)));
    check_agree(make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2, StridedSemantics::legacy>, shard_c<0>),
                                   hana::make_tuple(n)));
    check_agree(make_static_layout(Mesh{}, hana::make_tuple(block_cyclic_c<0, 2>, block_cyclic_c<1, 3, 1>), hana::make_tuple(n, index_t{11})));
  }
}

TEST_CASE("mixed static and dynamic extents") {
  index_t rows = 14336;
  auto layout = make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2>, shard_c<0>), hana::make_tuple(rows, int_c<4096>));
  static_assert(!decltype(layout)::is_static);
  CHECK(layout.local_shape({1, 1}) == std::array<index_t, 2>{1792, 4096});
  CHECK(layout.global_offset({1, 1}) == std::array<index_t, 2>{7168 + 1792, 0});
  CHECK(layout.to_runtime().placements() == parse_placements("_S(0,2),S(0)"));
  SHARDALG_CHECK_THROWS_CONTAINING(layout.local_shape({4, 0}), Error, "coordinate outside the mesh");
}
