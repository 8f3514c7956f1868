#include "../../test_support.hpp"

#include <numeric>

using namespace shardalg;

TEST_CASE("the host simulator moves every element to where the destination layout wants it") {
  Dims shape{7, 5};
  std::vector<int> global(35);
  std::iota(global.begin(), global.end(), 0);
  MeshLayout src = MeshLayout::parse("dp=4,tp=2", "_S(0,2),S(0)", shape);
  MeshLayout dst(DeviceMesh::parse("x=3", "[3]:[2,0,1]"), parse_placements("S(1)"), shape);
  ReshardPlan plan(src, dst);
  auto out = simulate(plan, plan.all_transfers(), scatter_to_ranks(src, global));
  CHECK(gather_from_ranks(dst, out) == global);
  CHECK(out.at(2) == scatter_to_ranks(dst, global).at(2));
}

TEST_CASE("partial sums, averages and maxima are reduced") {
  MeshLayout src = MeshLayout::parse("a=2,b=2", "P(sum),S(0)", Dims{4});
  MeshLayout dst = MeshLayout::parse("a=2,b=2", "S(0),R", Dims{4});
  ReshardPlan plan(src, dst);
  // Rank (a, b) holds values 10*a + position for its shard: sums are 10 + 2*position.
  RankBuffers<int> partial;
  for (index_t rank = 0; rank < 4; ++rank) {
    Tile tile = src.tile(rank);
    index_t a = rank / 2;
    for (index_t i = 0; i < tile.volume(); ++i) partial[rank].push_back(static_cast<int>(10 * a + tile.dim(0).global_at(i)));
  }
  auto out = simulate(plan, plan.all_transfers(), partial);
  CHECK(gather_from_ranks(dst, out) == std::vector<int>{10, 12, 14, 16});
  ReshardPlan maxima(MeshLayout::parse("a=2,b=2", "P(max),S(0)", Dims{4}), dst);
  CHECK(gather_from_ranks(dst, simulate(maxima, maxima.all_transfers(), partial)) == std::vector<int>{10, 11, 12, 13});
  ReshardPlan average(MeshLayout::parse("a=2,b=2", "P(avg),S(0)", Dims{4}), dst);
  RankBuffers<double> halves;
  for (auto& [rank, values] : partial) halves[rank].assign(values.begin(), values.end());
  auto avg = gather_from_ranks(dst, simulate(average, average.all_transfers(), halves));
  CHECK(avg == std::vector<double>{5, 6, 7, 8});
}

TEST_CASE("buffers that do not match the plan are rejected before anything moves") {
  MeshLayout src = MeshLayout::parse("dp=2", "S(0)", Dims{8});
  ReshardPlan plan(src, MeshLayout::parse("dp=2", "R", Dims{8}));
  RankBuffers<float> buffers{{0, std::vector<float>(4)}, {1, std::vector<float>(3)}};
  SHARDALG_CHECK_THROWS_CONTAINING(simulate(plan, plan.all_transfers(), buffers), Error, "source rank 1 needs a buffer of 4 elements");
  SHARDALG_CHECK_THROWS_CONTAINING(scatter_to_ranks(src, std::vector<float>(7)), Error, "has 7 elements");
}
