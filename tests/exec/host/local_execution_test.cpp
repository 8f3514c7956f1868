#include "../../test_support.hpp"

#include "../test_models.hpp"

using namespace shardalg;
using namespace shardalg::testing;

namespace {

// Every rank's buffers of a plan, filled with check_data's values (seeded).
struct WorldBuffers {
  std::map<index_t, Buffers> ranks;
  LocalSources sources;
  LocalDestinations destinations;
};

WorldBuffers world_buffers(const ModelReshardPlan& plan, std::uint64_t seed) {
  WorldBuffers w;
  std::vector<index_t> ranks = plan.source().ranks();
  ranks.insert(ranks.end(), plan.destination().ranks().begin(), plan.destination().ranks().end());
  for (index_t rank : ranks)
    if (!w.ranks.count(rank)) w.ranks.emplace(rank, buffers_for(plan, rank, seed));
  for (auto& [rank, b] : w.ranks) {
    w.sources[rank] = b.sources;
    w.destinations[rank] = b.destinations;
  }
  return w;
}

// Destination elements that do not hold their expected value, over every rank.
index_t mismatches(const ModelReshardPlan& plan, const WorldBuffers& w, std::uint64_t seed) {
  index_t bad = 0;
  for (const auto& [rank, b] : w.ranks) bad += check_destination_data(plan, rank, b.destination_data, seed).mismatches;
  return bad;
}

}  // namespace

TEST_CASE("box_rows: a box of a tile as rows of bytes (the comment's example), and a box of every dim") {
  Dims tile_strides = row_major_strides(Dims{4, 6});
  BoxRows box = box_rows(2, 1, 8, Dims{2, 3}, tile_strides, 4);  // rows 1-2, columns 2-4 of a [4, 6] fp32 tile
  CHECK(box.tensor == 2);
  CHECK(box.buffer == 1);
  CHECK(box.base == 32);
  CHECK(box.row_shape == Dims{2});
  CHECK(box.row_strides == Dims{24});
  CHECK(box.row_bytes == 12);
  CHECK(box.bytes() == 24);
  CHECK(box.row_offset(1) == 56);
  BoxRows scalar = box_rows(0, 0, 0, Dims{}, Dims{}, 8);
  CHECK((scalar.rows() == 1 && scalar.row_bytes == 8));
  BoxRows cube = box_rows(0, 0, 0, Dims{2, 2, 2}, row_major_strides(Dims{2, 3, 4}), 2);
  CHECK(cube.row_strides == Dims{24, 8});
  CHECK(cube.row_offset(3) == 32);  // row (1, 1): 24 + 8
}

TEST_CASE("execute_local delivers every element of whole-model plans, Partial sources reduced") {
  ModelSpec model = small_model(DType::bf16);
  for (auto [from, to] : {std::pair{"zero3 dp=4", "fsdp-tp dp=2,tp=2"}, {"fsdp-tp dp=2,tp=2", "megatron-distopt dp=3,tp=1"},
                          {"ep ep=2,dp=4,experts=zero3", "ep ep=4,dp=4,experts=fsdp"}, {"replicated ranks=2", "zero1 dp=3"}}) {
    CAPTURE(from);
    CAPTURE(to);
    ModelReshardPlan plan(layout_model(model, from), layout_model(model, to));
    WorldBuffers w = world_buffers(plan, 11);
    for (unsigned threads : {1u, 3u}) {
      ExecuteStats stats = execute_local(plan, w.sources, w.destinations, threads);
      CHECK(mismatches(plan, w, 11) == 0);
      CHECK(stats.bytes_received + stats.bytes_local > 0);
    }
  }
  ModelReshardPlan partial = one_tensor(MeshLayout::parse("a=2,b=2", "P(sum),S(0)", Dims{9, 5}), MeshLayout::parse("c=3", "S(1)", Dims{9, 5}),
                                        DType::fp32);
  WorldBuffers w = world_buffers(partial, 3);
  LocalExecution execution(partial, 2);
  execution.run(w.sources, w.destinations);
  CHECK(mismatches(partial, w, 3) == 0);
  execution.run(w.sources, w.destinations);  // again: reductions start from the identity each run
  CHECK(mismatches(partial, w, 3) == 0);
}

TEST_CASE("execute_local checks every buffer before any byte moves") {
  ModelReshardPlan plan = one_tensor(MeshLayout::parse("dp=2", "S(0)", Dims{8, 4}), MeshLayout::parse("dp=2", "S(1)", Dims{8, 4}), DType::fp32);
  WorldBuffers w = world_buffers(plan, 5);
  auto untouched = [&] {
    for (const auto& [rank, b] : w.ranks)
      for (const auto& buffer : b.destination_data)
        for (std::byte value : buffer)
          if (value != std::byte{0}) return false;
    return true;
  };
  LocalDestinations short_one = w.destinations;
  short_one[1][0].bytes -= 4;
  CHECK_THROWS_WITH_AS(execute_local(plan, w.sources, short_one), doctest::Contains("rank 1 destination buffer 0 (tensor 't') has 60 bytes"), Error);
  LocalDestinations wrong_type = w.destinations;
  wrong_type[0][0].dtype = DType::int32;
  CHECK_THROWS_WITH_AS(execute_local(plan, w.sources, wrong_type), doctest::Contains("holds int32; the plan needs fp32"), Error);
  LocalSources stranger = w.sources;
  stranger[7] = stranger[0];
  CHECK_THROWS_WITH_AS(execute_local(plan, stranger, w.destinations), doctest::Contains("rank 7, which neither layout uses"), Error);
  LocalDestinations aliased = w.destinations;
  aliased[1][0] = DestinationBuffer{const_cast<std::byte*>(w.sources[0][0].data) + 4, aliased[1][0].bytes, DType::fp32};
  CHECK_THROWS_WITH_AS(execute_local(plan, w.sources, aliased), doctest::Contains("overlap in memory"), Error);
  LocalSources missing = w.sources;
  missing.erase(1);
  CHECK_THROWS_WITH_AS(execute_local(plan, missing, w.destinations), doctest::Contains("rank 1 source buffer 0 (tensor 't') has 0 bytes"), Error);
  CHECK(untouched());
}
