#include "../test_support.hpp"

#include <limits>

using namespace shardalg;

namespace {
ModelReshardPlan one_tensor_plan(const MeshLayout& src, const MeshLayout& dst, DType dtype) {
  return ModelReshardPlan(ModelLayout({NamedTensorLayout{"t", dtype, TensorLayout(src)}}),
                          ModelLayout({NamedTensorLayout{"t", dtype, TensorLayout(dst)}}));
}
}  // namespace

TEST_CASE("volume matrix of S(0) -> R on 2 ranks") {
  auto plan = one_tensor_plan(MeshLayout::parse("dp=2", "S(0)", Dims{8}), MeshLayout::parse("dp=2", "R", Dims{8}), DType::fp32);
  CommunicationVolume v(plan, plan.all_transfers());
  CHECK(v.ranks() == 2);
  CHECK(v.sent()[0] == 16);
  CHECK(v.received()[1] == 16);
  CHECK(v.kept()[0] == 16);
  CHECK(v.transfers() == 4);
  CHECK(v.moved_bytes() == 32);
  CHECK(v.local_bytes() == 32);
  CHECK(v.max_sent() == 16);
  CHECK(v.max_received() == 16);
  CHECK(v.messages() == 2);
  CHECK(v.max_peers() == 1);
  CHECK(v.lower_bound_max() == 16);
  CHECK(v.lower_bound_total() == 32);
  CostModel model;
  // One message each way over NVLink; local copies are not messages.
  CHECK(v.point_to_point_us() == doctest::Approx(model.intra_node.message_us(16)));
}

TEST_CASE("volume matrix sums agree with the plan's transfers, and maxima bound the lower bound") {
  auto plan = one_tensor_plan(MeshLayout::parse("dp=4,tp=2", "S(0),S(1)", Dims{12, 6}),
                              MeshLayout::parse("dp=8", "S(1)", Dims{12, 6}, "[8]<=[8]"), DType::bf16);
  TransferList transfers = plan.all_transfers();
  CommunicationVolume v(plan, transfers);
  double moved = 0;
  for (const Transfer& t : transfers)
    if (t.src_rank != t.dst_rank) moved += 2.0 * static_cast<double>(t.global.volume());
  CHECK(v.moved_bytes() == moved);
  CHECK(v.total_bytes() == 2.0 * 12 * 6);
  CHECK(v.sent().sum() == moved);
  CHECK(v.received().sum() == moved);
  CHECK(v.max_received() >= v.lower_bound_max());
  CHECK(v.moved_bytes() >= v.lower_bound_total());
}

TEST_CASE("inter-node pairs cost the inter-node link") {
  CostModel model;
  model.ranks_per_node = 2;
  CHECK(model.same_node(0, 1));
  CHECK_FALSE(model.same_node(1, 2));
  CHECK(&model.link(1, 2) == &model.inter_node);
  DeviceMesh mesh = DeviceMesh::parse("dp=2,tp=2");
  std::vector<index_t> tp{1}, dp{0};
  CHECK(&model.group_link(mesh, tp) == &model.intra_node);  // ranks {0,1} and {2,3}
  CHECK(&model.group_link(mesh, dp) == &model.inter_node);  // ranks {0,2}: two nodes
  CHECK(model.collective_us(CollectiveKind::all_reduce, model.intra_node, 4, 1e6) ==
        doctest::Approx(model.intra_node.alpha_us + 2 * model.intra_node.beta_us() * 0.75 * 1e6));
  CHECK(model.collective_us(CollectiveKind::all_gather, model.inter_node, 1, 1e6) == doctest::Approx(model.inter_node.alpha_us));
  SHARDALG_CHECK_THROWS_CONTAINING(model.collective_us(CollectiveKind::p2p, model.intra_node, 2, 1), Error, "volume matrix");
  CostModel bad;
  bad.ranks_per_node = 0;
  SHARDALG_CHECK_THROWS_CONTAINING(bad.validate(), Error, "ranks per node 0");
}

TEST_CASE("a transfer list with a tensor of unknown element size is an error") {
  ReshardPlan plan(MeshLayout::parse("dp=2", "S(0)", Dims{8}), MeshLayout::parse("dp=2", "R", Dims{8}));
  TransferList transfers;
  transfers.append(plan.all_transfers(), 3);
  const index_t sizes[] = {4};
  SHARDALG_CHECK_THROWS_CONTAINING(CommunicationVolume(transfers, sizes), Error, "is of tensor 3 but element sizes are given for 1");
}

TEST_CASE("byte counts past int64's range add up in double instead of failing") {
  constexpr index_t max = std::numeric_limits<index_t>::max();
  ReshardPlan plan(MeshLayout::parse("dp=3", "S(0)", Dims{max}), MeshLayout::parse("dp=2", "S(0)", Dims{max}));
  TransferList transfers;
  transfers.append(plan.all_transfers(), 0);
  const index_t sizes[] = {8};
  CommunicationVolume v(transfers, sizes);
  CHECK(v.total_bytes() == doctest::Approx(8.0 * static_cast<double>(max)));
  CHECK(v.moved_bytes() > 9223372036854775807.0);  // more than int64 holds, still counted
}

TEST_CASE("ranks that no transfer touches still count (a tensor smaller than the mesh)") {
  // One element on 4 ranks: only rank 0 holds it before and after; ranks 1-3 hold nothing.
  auto plan = one_tensor_plan(MeshLayout::parse("dp=4", "S(0)", Dims{1}), MeshLayout::parse("dp=2,tp=2", "S(0),S(0)", Dims{1}), DType::fp32);
  CommunicationVolume v(plan, plan.all_transfers());
  CHECK(v.ranks() == 4);
  CHECK(v.moved_bytes() == 0);
  CHECK(v.local_bytes() == 4);
  for (index_t rank = 0; rank < 4; ++rank) CHECK(v.lower_bound_received(rank) == 0);
}
