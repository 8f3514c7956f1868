#include "../test_support.hpp"

#include <numeric>

using namespace shardalg;

namespace {
TensorLayout zero3_of(index_t numel, index_t ranks) {
  DeviceMesh mesh = DeviceMesh::parse("dp=" + std::to_string(ranks));
  return TensorLayout(std::make_shared<const ComposedFlatLayout>(
                          std::vector<NamedMeshLayout>{{"w", MeshLayout(mesh, parse_placements("R"), Dims{numel})}}, "dp",
                          FlatSchemeOptions{FlatScheme::zero3}),
                      0);
}

ModelSpec tiny_model() {
  return ModelSpec{"tiny",
                   {{"embed", Dims{10, 4}, TensorRole::vocab_parallel},
                    {"q", Dims{8, 4}, TensorRole::column_parallel},
                    {"o", Dims{4, 8}, TensorRole::row_parallel},
                    {"norm", Dims{4}, TensorRole::replicated}}};
}

}  // namespace

TEST_CASE("ZeRO-3 DP change 4 -> 3: each new partition reads the old windows it overlaps") {
  // 10 elements: old windows of 3 ([0,3) [3,6) [6,9) [9,10)+pad), new windows of 4.
  ReshardPlan plan(zero3_of(10, 4), zero3_of(10, 3));
  auto to1 = plan.transfers_to(1);  // new rank 1 holds [4, 8)
  REQUIRE(to1.size() == 2);
  CHECK(to1[0].src_rank == 1);
  CHECK(to1[0].global == Box(Dims{4}, Dims{2}));
  CHECK(to1[0].src_local == Dims{1});
  CHECK(to1[0].dst_local == Dims{0});
  CHECK(to1[1].src_rank == 2);
  CHECK(to1[1].global == Box(Dims{6}, Dims{2}));
  CHECK(to1[1].src_local == Dims{0});
  CHECK(to1[1].dst_local == Dims{2});
  CHECK(plan.lower_bound_elements(1) == 2);  // [4, 6) was rank 1's before
  verify_plan(plan, plan.all_transfers());
}

TEST_CASE("a whole model moves between recipes, every element in place") {
  ModelSpec model = tiny_model();
  struct Move {
    const char *from, *to;
  };
  for (Move m : {Move{"fsdp-tp dp=2,tp=2", "zero3 dp=3"}, Move{"zero1 dp=2,tp=2", "megatron-distopt dp=3,tp=1"}, Move{"replicated", "fsdp dp=4"},
                 Move{"zero3 dp=4", "replicated ranks=2"}}) {
    CAPTURE(m.from);
    CAPTURE(m.to);
    ModelLayout src = layout_model(model, m.from), dst = layout_model(model, m.to);
    ModelReshardPlan plan(src, dst);
    auto globals = testing::numbered_tensors(src);
    auto out = simulate_model(plan, plan.all_transfers(), scatter_model(src, globals));
    CHECK(out == scatter_model(dst, globals));
    CHECK(gather_model(dst, out) == globals);
    // Per-rank planning gives the same transfers as the global plan.
    std::size_t per_rank = 0;
    for (index_t rank : dst.ranks()) per_rank += plan.transfers_to(rank).size();
    CHECK(per_rank == plan.all_transfers().size());
  }
}

TEST_CASE("model plans name the tensor that does not match") {
  ModelSpec model = tiny_model();
  ModelSpec other = model;
  other.tensors[2].shape = Dims{4, 9};
  SHARDALG_CHECK_THROWS_CONTAINING(ModelReshardPlan(layout_model(model, "fsdp dp=2"), layout_model(other, "fsdp dp=2")), Error,
                                   "tensor 'o': reshard: source shape [4, 8] and destination shape [4, 9] differ");
  other = model;
  other.tensors[3].dtype = DType::fp32;
  SHARDALG_CHECK_THROWS_CONTAINING(ModelReshardPlan(layout_model(model, "fsdp dp=2"), layout_model(other, "fsdp dp=2")), Error,
                                   "tensor 'norm' is bf16 in the source and fp32 in the destination");
  other = model;
  other.tensors.pop_back();
  SHARDALG_CHECK_THROWS_CONTAINING(ModelReshardPlan(layout_model(model, "fsdp dp=2"), layout_model(other, "fsdp dp=2")), Error,
                                   "tensor 'norm' of the source is not in the destination");
}

TEST_CASE("model verification and simulation refuse bad transfers and buffers before running") {
  ModelSpec model = tiny_model();
  ModelLayout src = layout_model(model, "zero3 dp=2"), dst = layout_model(model, "fsdp dp=3");
  ModelReshardPlan plan(src, dst);
  auto transfers = plan.all_transfers();
  auto bad = transfers.to_vector();
  bad[3].src_local[0] += 1;
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(bad)), Error, "does not hold");
  bad = transfers.to_vector();
  bad[0].tensor = 9;
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(bad)), Error, "names tensor 9 of 4");
  auto buffers = scatter_model(src, testing::numbered_tensors(src));
  buffers[0][1].pop_back();
  SHARDALG_CHECK_THROWS_CONTAINING(simulate_model(plan, transfers, buffers), Error, "simulate: source rank 1 needs a buffer of");
}

TEST_CASE("repeated layers: equal-shaped ZeRO-3 tensors are shifts of each other, and verification still checks each") {
  ModelSpec model{"repeated",
                  {{"l0.q", Dims{6, 4}, TensorRole::column_parallel},
                   {"l1.q", Dims{6, 4}, TensorRole::column_parallel},
                   {"l2.q", Dims{6, 4}, TensorRole::column_parallel}}};
  ModelLayout src = layout_model(model, "zero3 dp=4"), dst = layout_model(model, "zero3 dp=3");
  // The layout law the planner and the verifier rely on: same pieces, partition positions shifted.
  for (std::size_t t = 1; t < 3; ++t) {
    auto shift = src[t].layout.shift_from(src[0].layout);
    REQUIRE(shift);
    CHECK(*shift != 0);
    for (index_t rank : src.ranks()) {
      std::vector<Piece> base = src[0].layout.pieces(rank), moved = src[t].layout.pieces(rank);
      REQUIRE(base.size() == moved.size());
      for (std::size_t p = 0; p < base.size(); ++p) {
        CHECK(moved[p].global == base[p].global);
        CHECK(moved[p].local[0] == base[p].local[0] + *shift);
      }
    }
  }
  CHECK_FALSE(layout_model(ModelSpec{"other", {{"x", Dims{4, 6}, TensorRole::column_parallel}}}, "zero3 dp=4")[0].layout.shift_from(src[0].layout));
  ModelReshardPlan plan(src, dst);
  TransferList good = plan.all_transfers();
  verify_plan(plan, good);
  // A wrong transfer in a later, repeated layer is caught and named (not excused by layer 0).
  std::vector<Transfer> bad = good.to_vector();
  auto last = std::find_if(bad.rbegin(), bad.rend(), [](const Transfer& t) { return t.tensor == 2; });
  REQUIRE(last != bad.rend());
  last->dst_local[0] += 1;
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(bad)), Error, "tensor 'l2.q': plan: destination rank");
  // A repeated layer missing a transfer is caught too.
  bad = good.to_vector();
  bad.erase(std::find_if(bad.begin(), bad.end(), [](const Transfer& t) { return t.tensor == 1; }));
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(bad)), Error, "tensor 'l1.q'");
}

TEST_CASE("0-d tensors (a learned scalar) move between every pair of recipes") {
  // Once dropped twice over: a replicated mesh source offered a 0-d box with no coordinates,
  // which grouping by coordinates skipped (no transfer into a flat destination), and a rank
  // outside a mesh "held" the scalar (a 0-d tile had no empty dim to say otherwise).
  ModelSpec model{"scalars", {{"temperature", Dims{}, TensorRole::replicated, DType::fp32},
                              {"bias", Dims{6}, TensorRole::row_parallel, DType::fp32},
                              {"scale", Dims{}, TensorRole::column_parallel, DType::fp32}}};
  std::vector<const char*> recipes{"replicated ranks=2", "fsdp dp=1", "fsdp dp=4", "fsdp-tp dp=2,tp=2", "zero1 dp=3",
                                   "zero2 dp=2,tp=2", "zero3 dp=2", "megatron-distopt dp=2,tp=1"};
  for (const char* from : recipes)
    for (const char* to : recipes) {
      CAPTURE(from);
      CAPTURE(to);
      ModelLayout src = layout_model(model, from), dst = layout_model(model, to);
      ModelReshardPlan plan(src, dst);
      auto globals = testing::numbered_tensors(src);
      auto out = simulate_model(plan, plan.all_transfers(), scatter_model(src, globals));
      CHECK(gather_model(dst, out) == globals);
      for (index_t rank = 0; rank < 6; ++rank) {
        CHECK(plan.tensor_plan(0).lower_bound_elements(rank) ==
              (dst[0].layout.held_elements(rank) > 0 && src[0].layout.held_elements(rank) == 0 ? 1 : 0));
      }
    }
}
