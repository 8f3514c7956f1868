#include "../test_support.hpp"

using namespace shardalg;

namespace {
index_t cross_rank_elements(const TransferList& transfers) {
  index_t n = 0;
  for (const Transfer& t : transfers)
    if (t.src_rank != t.dst_rank) n += t.global.volume();
  return n;
}
}  // namespace

TEST_CASE("FSDP dp=8 to FSDP+TP dp=4,tp=2 on the same ranks") {
  ReshardPlan plan(MeshLayout::parse("dp=8", "S(0)", Dims{16, 4}), MeshLayout::parse("dp=4,tp=2", "S(0),S(1)", Dims{16, 4}));
  auto to0 = plan.transfers_to(0);  // rank 0 gets rows [0,4) x cols [0,2): rows 0-1 from itself, 2-3 from rank 1
  REQUIRE(to0.size() == 2);
  CHECK(to0[0].src_rank == 0);
  CHECK(to0[0].global == Box(Dims{0, 0}, Dims{2, 2}));
  CHECK(to0[0].src_local == Dims{0, 0});
  CHECK(to0[1].src_rank == 1);
  CHECK(to0[1].global == Box(Dims{2, 0}, Dims{2, 2}));
  CHECK(to0[1].src_local == Dims{0, 0});
  CHECK(to0[1].dst_local == Dims{2, 0});
  auto all = plan.all_transfers();
  verify_plan(plan, all);
  index_t bound = 0;
  for (index_t r = 0; r < 8; ++r) bound += plan.lower_bound_elements(r);
  CHECK(cross_rank_elements(all) == bound);
  // Sends of one rank are exactly its part of the global plan.
  auto from1 = plan.transfers_from(1);
  index_t sent = 0;
  for (const Transfer& t : all)
    if (t.src_rank == 1) sent += t.global.volume();
  index_t sent_by_query = 0;
  for (const Transfer& t : from1) sent_by_query += t.global.volume();
  CHECK(sent_by_query == sent);
}

TEST_CASE("replicated sources: one sender per element, local copies preferred") {
  ReshardPlan plan(MeshLayout::parse("dp=4", "R", Dims{8}), MeshLayout::parse("dp=4", "S(0)", Dims{8}));
  for (index_t r = 0; r < 4; ++r) {
    auto t = plan.transfers_to(r);
    REQUIRE(t.size() == 1);
    CHECK(t[0].src_rank == r);  // everything is local
  }
  // To a different set of ranks: senders spread over the replicas.
  MeshLayout elsewhere(DeviceMesh({"dp"}, Dims{4}, {4, 5, 6, 7}), {Placement::shard(0)}, Dims{8});
  ReshardPlan spread(MeshLayout::parse("dp=2", "R", Dims{8}), elsewhere);
  std::vector<index_t> senders;
  for (index_t r = 4; r < 8; ++r) senders.push_back(spread.transfers_to(r).at(0).src_rank);
  CHECK(std::count(senders.begin(), senders.end(), 0) == 2);
  CHECK(std::count(senders.begin(), senders.end(), 1) == 2);
}

TEST_CASE("partial sources become reductions from every contributor") {
  ReshardPlan plan(MeshLayout::parse("a=2,b=2", "P(sum),S(0)", Dims{4}), MeshLayout::parse("a=2,b=2", "R,R", Dims{4}));
  auto to0 = plan.transfers_to(0);
  CHECK(to0.size() == 4);  // 2 contributors x 2 shards
  for (const Transfer& t : to0) CHECK(t.contributors == 2);
  verify_plan(plan, plan.all_transfers());
  CHECK(plan.reduce_op() == ReduceOp::sum);
}

TEST_CASE("bad reshards are errors naming the value") {
  SHARDALG_CHECK_THROWS_CONTAINING(ReshardPlan(MeshLayout::parse("dp=2", "S(0)", Dims{8}), MeshLayout::parse("dp=2", "S(0)", Dims{9})),
                                   Error, "source shape [8] and destination shape [9] differ");
  SHARDALG_CHECK_THROWS_CONTAINING(ReshardPlan(MeshLayout::parse("dp=2", "S(0)", Dims{8}), MeshLayout::parse("dp=2", "P(sum)", Dims{8})),
                                   Error, "destination placement P(sum) is not supported");
  SHARDALG_CHECK_THROWS_CONTAINING(
      ReshardPlan(MeshLayout::parse("a=2,b=2", "P(sum),P(max)", Dims{8}), MeshLayout::parse("a=2,b=2", "R,R", Dims{8})), Error,
      "mixes Partial reduce ops sum and max");
}

TEST_CASE("verification rejects missing, duplicated and misplaced transfers") {
  ReshardPlan plan(MeshLayout::parse("dp=4", "S(0)", Dims{8, 2}), MeshLayout::parse("dp=2", "S(1)", Dims{8, 2}));
  auto good = plan.all_transfers().to_vector();  // edited as values, checked as lists
  verify_plan(plan, TransferList(good));
  auto missing = good;
  missing.pop_back();
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(missing)), Error, "receives 6 elements from one contributor class but holds 8");
  auto twice = good;
  twice.push_back(good.front());
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(twice)), Error, "twice");
  auto swapped = good;
  swapped.pop_back();
  Transfer wrong = good.back();
  wrong.src_rank = (wrong.src_rank + 1) % 4;
  swapped.push_back(wrong);
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(swapped)), Error, "does not hold");
  auto shifted = good;
  shifted.back().dst_local[0] += 1;
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(shifted)), Error, "destination rank");
  // Same volume, but one region written twice and another never: caught by the overlap sweep.
  auto overlapping = good;
  std::size_t second = 1;
  while (overlapping[second].dst_rank != overlapping[0].dst_rank) ++second;
  REQUIRE(overlapping[second].global.volume() == overlapping[0].global.volume());
  overlapping[second] = overlapping[0];
  SHARDALG_CHECK_THROWS_CONTAINING(verify_plan(plan, TransferList(overlapping)), Error, "twice");
}

TEST_CASE("a transfer list stores transfers compactly and gives them back unchanged") {
  std::vector<Transfer> values = {Transfer{1, 0, Box(Dims{0, 0}, Dims{2, 4}), Dims{0, 0}, Dims{2, 0}},
                                  Transfer{2, 3, Box(Dims{5}, Dims{3}), Dims{7}, Dims{1}, 2, 4},
                                  Transfer{0, 0, Box(Dims{}, Dims{}), Dims{}, Dims{0}}};
  TransferList list(values);
  REQUIRE(list.size() == 3);
  CHECK(list.to_vector() == values);
  CHECK(list.volume(0) == 8);
  CHECK(list.volume(2) == 1);  // a scalar is one element
  CHECK(list.dst_local(1)[0] == 1);
  CHECK(list.contributors(1) == 2);
  CHECK(list.tensor(1) == 4);
  // Appending tags the tensor and shifts partition positions (the first local coordinate).
  TransferList model;
  model.append(list, 9, 10, 100);
  CHECK(model[0].src_local == Dims{10, 0});
  CHECK(model[0].dst_local == Dims{102, 0});
  CHECK(model[1].tensor == 9);
  CHECK(model[1].src_local == Dims{17});
  // One transfer copied from another list keeps every field.
  TransferList one;
  one.push_back(list, 1);
  CHECK(one.at(0) == values[1]);
  SHARDALG_CHECK_THROWS_CONTAINING(one.at(1), Error, "index 1 out of 1 transfers");
}

TEST_CASE("all_transfers' indexed path (one holder per element, one run per dim) equals every rank's transfers_to") {
  struct Case {
    const char *src_mesh, *src_placements, *dst_mesh, *dst_placements;
    Dims shape;
  };
  // Uneven and empty shards, destinations of several boxes (strided), 0-d, a source mesh more than
  // 4x the destination's (the generic path), a shard order on the source.
  for (const Case& c : {Case{"a=2,b=3", "S(0),S(1)", "x=4", "_S(1,2)", Dims{7, 5}}, Case{"a=4", "S(0)", "x=3,y=2", "S(1),S(0)", Dims{6, 4}},
                        Case{"a=3", "S(1)", "x=2", "R", Dims{2, 9}}, Case{"a=1", "R", "x=4", "R", Dims{}},
                        Case{"a=16", "S(0)", "x=2", "S(1)", Dims{20, 3}}, Case{"a=8", "S(0)", "x=2", "S(0)", Dims{3, 2}}}) {
    CAPTURE(c.src_placements);
    CAPTURE(c.dst_placements);
    ReshardPlan plan(TensorLayout(MeshLayout::parse(c.src_mesh, c.src_placements, c.shape)),
                     TensorLayout(MeshLayout::parse(c.dst_mesh, c.dst_placements, c.shape)));
    TransferList all = plan.all_transfers(), parts;
    for (index_t rank : plan.destination().mesh().devices()) parts.append(plan.transfers_to(rank), 0);
    verify_plan(plan, all);
    auto listed = [](const TransferList& list) {
      std::vector<std::string> out;
      for (const Transfer& t : list)
        out.push_back(detail::concat(t.src_rank, "->", t.dst_rank, " ", t.global, " ", t.src_local, " ", t.dst_local));
      std::sort(out.begin(), out.end());
      return out;
    };
    CHECK(listed(all) == listed(parts));
  }
  // A shard order on the source: [tp, dp] splits dim 0 tp-first, still one run per rank.
  MeshLayout ordered(DeviceMesh::parse("dp=3,tp=2"), parse_placements("S(0),S(0)"), Dims{13, 2}, parse_shard_order("0:[1,0]"));
  ReshardPlan plan{TensorLayout(ordered), TensorLayout(MeshLayout::parse("x=5", "S(0)", Dims{13, 2}))};
  TransferList all = plan.all_transfers();
  verify_plan(plan, all);
  index_t moved = 0;
  for (const Transfer& t : all) moved += t.global.volume();
  CHECK(moved == 26);
}

TEST_CASE("TransferList records: 32 bytes, values that do not fit are refused by name") {
  TransferList list;
  Dims offset{0}, shape{4}, local{0};
  list.push_back(16777215, 3, as_span(offset), as_span(shape), as_span(local), as_span(local), 2, 7);
  CHECK(list.src_rank(0) == 16777215);
  CHECK(list.contributors(0) == 2);
  CHECK(list.tensor(0) == 7);
  SHARDALG_CHECK_THROWS_CONTAINING(list.push_back(index_t{1} << 40, 0, as_span(offset), as_span(shape), as_span(local), as_span(local)), Error,
                                   "source rank 1099511627776 does not fit a transfer record");
  TransferList more;
  SHARDALG_CHECK_THROWS_CONTAINING(more.append(list, index_t{1} << 33), Error, "tensor index 8589934592 does not fit");
  CHECK(more.empty());
  CHECK(more.coordinate_count() == 0);  // refused before anything changed
}
