#include "../test_support.hpp"

#include <algorithm>
#include <numeric>

using namespace shardalg;

namespace {
ModelReshardPlan one_tensor_plan(const MeshLayout& src, const MeshLayout& dst) {
  return ModelReshardPlan(ModelLayout({NamedTensorLayout{"t", DType::fp32, TensorLayout(src)}}),
                          ModelLayout({NamedTensorLayout{"t", DType::fp32, TensorLayout(dst)}}));
}

// Bytes the direct plan moves between distinct ranks when role r of `dst` is process perm(r).
double moved_with(const MeshLayout& src, const MeshLayout& dst, const Relabeling& relabeling) {
  std::vector<index_t> devices;
  for (index_t role : dst.mesh().devices()) devices.push_back(relabeling.process_of(role));
  MeshLayout relabeled(DeviceMesh(dst.mesh().names(), dst.mesh().shape(), devices), dst.placements(), dst.global_shape());
  ReshardPlan plan(src, relabeled);
  double moved = 0;
  for (const Transfer& t : plan.all_transfers())
    if (t.src_rank != t.dst_rank) moved += 4.0 * static_cast<double>(t.global.volume());
  return moved;
}
}  // namespace

TEST_CASE("a reversed device order is undone: nothing moves after relabeling") {
  MeshLayout src = MeshLayout::parse("dp=4", "S(0)", Dims{16, 4});
  MeshLayout dst = MeshLayout::parse("dp=4", "S(0)", Dims{16, 4}, "[3,2,1,0]");
  Relabeling r = relabel_destination(one_tensor_plan(src, dst));
  CHECK(r.exact);
  CHECK(r.moved_before == 16 * 4 * 4);
  CHECK(r.moved_after == 0);
  CHECK(r.saved() == 16 * 4 * 4);
  CHECK(r.process_of(0) == 3);
  CHECK(r.process_of(3) == 0);
  CHECK(moved_with(src, dst, r) == r.moved_after);
}

TEST_CASE("the exact assignment is optimal: brute force over every permutation") {
  struct Case {
    std::string src, dst;
    Dims shape;
  };
  for (const Case& c : std::vector<Case>{
           {"S(0),S(1)", "S(1),S(0)", Dims{6, 6}}, {"S(0),R", "R,S(1)", Dims{5, 7}}, {"S(0),S(0)", "S(1),R", Dims{12, 3}}}) {
    INFO(c.src, " -> ", c.dst);
    MeshLayout src = MeshLayout::parse("a=2,b=3", c.src, c.shape);
    MeshLayout dst = MeshLayout::parse("x=3,y=2", c.dst, c.shape);
    Relabeling r = relabel_destination(one_tensor_plan(src, dst));
    CHECK(moved_with(src, dst, r) == r.moved_after);
    std::vector<index_t> perm(6);
    std::iota(perm.begin(), perm.end(), index_t{0});
    double best = 1e300;
    do {
      Relabeling candidate = r;
      candidate.process_of_role = perm;
      best = std::min(best, moved_with(src, dst, candidate));
    } while (std::next_permutation(perm.begin(), perm.end()));
    CHECK(r.moved_after == best);
    CHECK(r.moved_after <= r.moved_before);
    CHECK(r.moved_bound == r.moved_after);
  }
}

TEST_CASE("the greedy heuristic above the exact limit reports a bound it respects") {
  MeshLayout src = MeshLayout::parse("a=4,b=4", "S(0),S(1)", Dims{16, 16});
  MeshLayout dst = MeshLayout::parse("x=4,y=4", "S(1),S(0)", Dims{16, 16}, "[4,4]<=[4,4]T(1,0)");
  auto plan = one_tensor_plan(src, dst);
  Relabeling greedy = relabel_destination(plan, 4);
  Relabeling exact = relabel_destination(plan);
  CHECK_FALSE(greedy.exact);
  CHECK(exact.exact);
  CHECK(greedy.moved_bound <= exact.moved_after);
  CHECK(greedy.moved_after >= exact.moved_after);
  CHECK(greedy.moved_after <= greedy.moved_before);
  CHECK(moved_with(src, dst, greedy) == greedy.moved_after);
  std::vector<index_t> sorted = greedy.process_of_role;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == greedy.roles);  // a permutation
  SHARDALG_CHECK_THROWS_CONTAINING(relabel_destination(plan, -1), Error, "exact limit -1 must be >= 0");
}

TEST_CASE("source ranks that are gone keep nothing; new ranks hold nothing") {
  // Shrinking 8 -> 4 ranks: ranks 4..7 are gone; the destination's processes are 0..3.
  MeshLayout src = MeshLayout::parse("dp=8", "S(0)", Dims{16});
  MeshLayout dst = MeshLayout::parse("dp=4", "S(0)", Dims{16});
  Relabeling r = relabel_destination(one_tensor_plan(src, dst));
  CHECK(r.roles == std::vector<index_t>{0, 1, 2, 3});
  CHECK(r.bytes_needed == 64);
  CHECK(moved_with(src, dst, r) == r.moved_after);
  CHECK(r.moved_after <= r.moved_before);
}
