#include "../test_support.hpp"

using namespace shardalg;

namespace {
// The elements 0..n-1.
std::vector<int> iota_values(int n) {
  std::vector<int> values(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = i;
  return values;
}

// Records which member the dispatch called.
struct RecordingBackend {
  std::string local(const CollectiveStep&) { return "local"; }
  std::string all_gather(const CollectiveStep&) { return "all_gather"; }
  std::string all_to_all(const CollectiveStep&) { return "all_to_all"; }
  std::string reduce_scatter(const CollectiveStep&) { return "reduce_scatter"; }
  std::string all_reduce(const CollectiveStep&) { return "all_reduce"; }
};
static_assert(CollectiveBackend<RecordingBackend>);
static_assert(!CollectiveBackend<int>, "a backend must implement every kind");
}  // namespace

TEST_CASE("AroundDim, slice_along and concat_along: one stride rule") {
  AroundDim around(Dims{4, 6, 2}, 1);
  CHECK(around.outer == 4);
  CHECK(around.extent == 6);
  CHECK(around.inner == 2);
  std::vector<int> data = iota_values(12);
  std::span<const int> view(data);
  CHECK(slice_along(view, Dims{3, 4}, SliceAlong{1, 1, 2}) == std::vector<int>{1, 2, 5, 6, 9, 10});
  CHECK(slice_along(view, Dims{3, 4}, SliceAlong{0, 2, 1}) == std::vector<int>{8, 9, 10, 11});
  CHECK(slice_along(view, Dims{3, 4}, SliceAlong{1, 0, 0}).empty());
  // Splitting along a dim and joining the parts back is the identity.
  for (std::size_t d = 0; d < 2; ++d) {
    Dims shape{3, 4};
    index_t cut = d == 0 ? 1 : 3;
    std::vector<int> a = slice_along(view, shape, SliceAlong{d, 0, cut}), b = slice_along(view, shape, SliceAlong{d, cut, shape[d] - cut});
    Dims shape_a = shape, shape_b = shape;
    shape_a[d] = cut;
    shape_b[d] = shape[d] - cut;
    CHECK(concat_along(std::vector<std::span<const int>>{a, b}, {shape_a, shape_b}, d) == data);
  }
}

TEST_CASE("describe_collective_step: what each member sends and receives") {
  // S(0) -> R on a=2 over [4, 3]: an all-gather of two [2, 3] halves along dim 0.
  CollectiveProgram gather = search_collectives(MeshLayout::parse("a=2", "S(0)", Dims{4, 3}), MeshLayout::parse("a=2", "R", Dims{4, 3}), 4).value();
  REQUIRE(gather.steps.size() == 1);
  CollectiveStep step = describe_collective_step(gather, 0, {0, 1}, group_tiles(gather, 0, {0, 1}), 1, 4);
  CHECK(step.kind == CollectiveKind::all_gather);
  CHECK(step.me == 1);
  CHECK(step.shape == Dims{2, 3, 4});
  CHECK(step.receives == std::vector<Dims>{Dims{2, 3, 4}, Dims{2, 3, 4}});
  CHECK(step.join_dim == 0);
  CHECK(step.out_bytes == 48);
  // P -> S(1) on a=2 over [2, 5]: a reduce-scatter; rank 0 sends columns [0,3) to itself, [3,5) to rank 1.
  CollectiveProgram scatter = search_collectives(MeshLayout::parse("a=2", "P", Dims{2, 5}), MeshLayout::parse("a=2", "S(1)", Dims{2, 5}), 4).value();
  REQUIRE(scatter.steps.size() == 1);
  CollectiveStep rs = describe_collective_step(scatter, 0, {0, 1}, group_tiles(scatter, 0, {0, 1}), 0, 4);
  CHECK(rs.kind == CollectiveKind::reduce_scatter);
  REQUIRE(rs.sends.size() == 2);
  CHECK((rs.sends[0].dim == 1 && rs.sends[0].begin == 0 && rs.sends[0].count == 3));
  CHECK((rs.sends[1].dim == 1 && rs.sends[1].begin == 3 && rs.sends[1].count == 2));
  CHECK(rs.out_bytes == 2 * 3 * 4);
}

TEST_CASE("run_collective_step: one dispatch, p2p refused naming the backend") {
  RecordingBackend backend;
  CollectiveStep step;
  for (CollectiveKind kind : {CollectiveKind::local, CollectiveKind::all_gather, CollectiveKind::all_to_all, CollectiveKind::reduce_scatter,
                              CollectiveKind::all_reduce}) {
    step.kind = kind;
    CHECK(run_collective_step(step, backend, "test") == to_string(kind));
  }
  step.kind = CollectiveKind::p2p;
  step.index = 3;
  SHARDALG_CHECK_THROWS_CONTAINING(run_collective_step(step, backend, "MPI collective program"), Error,
                                   "MPI collective program: step 3 is a p2p step");
}

TEST_CASE("collective programs refuse a source mixing Partial ops") {
  MeshLayout mixed = MeshLayout::parse("a=2,b=2", "P(sum),P(max)", Dims{4});
  CollectiveProgram program;
  program.states = {mixed, mixed};
  RankBuffers<float> sources = scatter_to_ranks(TensorLayout(mixed), std::vector<float>{1, 2, 3, 4});
  SHARDALG_CHECK_THROWS_CONTAINING(run_collective_program(program, sources), Error, "collective program: source mixes Partial reduce ops sum and max");
}
