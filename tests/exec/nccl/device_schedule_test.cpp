// The NCCL executor's schedule, run on the host: every rank's launches executed with the device
// unit walk (run_on_host) and element_ops for reductions and identities, messages delivered
// between the ranks' schedules round by round; every destination element is then checked. This
// is the schedule execute_nccl queues on a GPU, so its descriptors are proven here without one.
#include <map>
#include <random>

#include "../../test_support.hpp"
#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/nccl/device_schedule.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "../test_models.hpp"

using namespace shardalg;
using testing::one_tensor;
using testing::small_model;

namespace {

// Runs launch i of `list` on the host, as the CUDA kernels would.
void run_launch_on_host(const LaunchList& list, std::size_t i) {
  const LaunchList::Launch& l = list[i];
  for (std::size_t k = l.first; k < l.first + l.count; ++k) {
    const BoxCopy& c = list.descriptors()[k];
    for (std::int64_t unit = 0; unit < units_of(c); ++unit) {
      if (l.kind == LaunchList::Kind::copy) {
        for (int lane = 0; lane < 32; ++lane) copy_unit(c, unit, lane, 32);
        continue;
      }
      UnitSpan span = unit_span(c, unit);
      index_t count = span.bytes / element_bytes(l.dtype);
      if (l.kind == LaunchList::Kind::fill) fill_identity(l.dtype, l.op, span.dst, count);
      else reduce_bytes(l.dtype, l.op, l.contributors, span.dst, span.src, count);
    }
  }
}

struct RankState {
  testing::Buffers buffers;
  std::vector<std::vector<std::byte>> staging;
  std::unique_ptr<RankPart> part;
  DeviceSchedule schedule;
};

// Runs the plan on `world` ranks through their device schedules; returns the mismatches over
// all ranks (and checks that every held element was checked).
index_t run_schedules(const ModelReshardPlan& plan, index_t world, index_t memory_limit) {
  std::vector<RankState> ranks(static_cast<std::size_t>(world));
  std::vector<std::unique_ptr<RankPart>> parts;
  for (index_t r = 0; r < world; ++r) parts.push_back(std::make_unique<RankPart>(plan, r));
  detail::Agreement::Values maxima;  // the all-max of the ranks' proposals
  maxima.fill(std::numeric_limits<index_t>::min());
  for (const auto& part : parts) {
    detail::Agreement::Values proposal = detail::Agreement::propose(*part, memory_limit, false);
    for (std::size_t i = 0; i < maxima.size(); ++i) maxima[i] = std::max(maxima[i], proposal[i]);
  }
  index_t round_bytes = detail::Agreement(maxima).round_bytes();
  for (index_t r = 0; r < world; ++r) {
    RankState& s = ranks[static_cast<std::size_t>(r)];
    s.part = std::move(parts[static_cast<std::size_t>(r)]);
    s.buffers = testing::buffers_for(plan, r, 11);
    detail::check_part(*s.part, s.buffers.sources, s.buffers.destinations, memory_limit);
    s.staging.emplace_back(static_cast<std::size_t>(device_staging_bytes(plan, *s.part, round_bytes)));
    CHECK((memory_limit == 0 || static_cast<index_t>(s.staging[0].size()) <= memory_limit));
    s.schedule = make_device_schedule(plan, *s.part, s.buffers.sources, s.buffers.destinations, round_bytes, s.staging[0].data());
    for (std::size_t l : s.schedule.fills) run_launch_on_host(s.schedule.launches, l);
    for (std::size_t l : s.schedule.locals) run_launch_on_host(s.schedule.launches, l);
  }
  std::size_t rounds = 0;
  for (const RankState& s : ranks) rounds = std::max(rounds, s.schedule.rounds.size());
  for (std::size_t round = 0; round < rounds; ++round) {
    for (RankState& s : ranks)
      if (round < s.schedule.rounds.size() && s.schedule.rounds[round].pack) run_launch_on_host(s.schedule.launches, *s.schedule.rounds[round].pack);
    // Deliver: rank a's send to b is b's receive from a (one message per pair per round).
    std::map<std::pair<index_t, index_t>, DeviceTransfer<const std::byte>> sent;
    for (index_t a = 0; a < world; ++a) {
      const RankState& s = ranks[static_cast<std::size_t>(a)];
      if (round >= s.schedule.rounds.size()) continue;
      for (const auto& t : s.schedule.rounds[round].sends) CHECK(sent.emplace(std::pair{a, t.peer}, t).second);
    }
    for (index_t b = 0; b < world; ++b) {
      RankState& s = ranks[static_cast<std::size_t>(b)];
      if (round >= s.schedule.rounds.size()) continue;
      for (const auto& t : s.schedule.rounds[round].receives) {
        auto found = sent.find({t.peer, b});
        REQUIRE(found != sent.end());
        REQUIRE(found->second.bytes == t.bytes);
        std::memcpy(t.data, found->second.data, static_cast<std::size_t>(t.bytes));
        sent.erase(found);
      }
      for (std::size_t l : s.schedule.rounds[round].unpack) run_launch_on_host(s.schedule.launches, l);
    }
    CHECK(sent.empty());
  }
  index_t mismatches = 0;
  for (index_t r = 0; r < world; ++r) {
    DataCheck check = check_destination_data(plan, r, ranks[static_cast<std::size_t>(r)].buffers.destination_data, 11);
    index_t held = 0;
    for (std::size_t t = 0; t < plan.destination().size(); ++t)
      if (plan.destination()[t].layout.mesh().contains(r)) held += plan.destination()[t].layout.held_elements(r);
    CHECK(check.elements == held);
    mismatches += check.mismatches;
  }
  return mismatches;
}

index_t run_recipes(index_t world, const std::string& from, const std::string& to, DType dtype, index_t memory_limit = 0) {
  ModelSpec model = small_model(dtype);
  return run_schedules(ModelReshardPlan(layout_model(model, from), layout_model(model, to)), world, memory_limit);
}

}  // namespace

TEST_CASE("row blocks: rows [first, last) of a box, each exactly once, in order, in at most 2 x dims blocks") {
  for (Dims shape : {Dims{}, Dims{5}, Dims{2, 3}, Dims{3, 1, 4}, Dims{2, 3, 2, 2}}) {
    index_t rows = volume(shape);
    for (index_t first = 0; first <= rows; ++first)
      for (index_t last = first; last <= rows; ++last) {
        std::vector<index_t> seen;
        std::size_t blocks = 0;
        for_each_row_block(shape, first, last, [&](const Dims& start, const Dims& block) {
          ++blocks;
          for (index_t i = 0; i < volume(block); ++i) {
            Dims at = row_major_coordinate(block, i);
            index_t row = 0;
            for (std::size_t d = 0; d < shape.size(); ++d) row = row * shape[d] + start[d] + at[d];
            seen.push_back(row);
          }
        });
        std::vector<index_t> expected;
        for (index_t r = first; r < last; ++r) expected.push_back(r);
        CHECK(seen == expected);
        CHECK(blocks <= std::max<std::size_t>(1, 2 * shape.size()));
      }
  }
}

TEST_CASE("copy units: unaligned boxes of every width copy exactly their bytes, nothing around them") {
  std::mt19937_64 random(5);
  for (int trial = 0; trial < 200; ++trial) {
    index_t rows = 1 + static_cast<index_t>(random() % 5), row_bytes = 1 + static_cast<index_t>(random() % 9000);
    index_t src_stride = row_bytes + static_cast<index_t>(random() % 40), dst_stride = row_bytes + static_cast<index_t>(random() % 40);
    std::vector<std::byte> src(static_cast<std::size_t>(rows * src_stride + 64)), dst(static_cast<std::size_t>(rows * dst_stride + 64), std::byte{0xee});
    for (auto& b : src) b = static_cast<std::byte>(random());
    index_t s0 = static_cast<index_t>(random() % 17), d0 = static_cast<index_t>(random() % 17);
    CopyBatch batch;
    batch.add(src.data() + s0, dst.data() + d0, Dims{rows}, Dims{src_stride}, Dims{dst_stride}, row_bytes);
    run_on_host(batch);
    for (index_t at = 0; at < static_cast<index_t>(dst.size()); ++at) {
      index_t rel = at - d0, row = rel / dst_stride, col = rel % dst_stride;
      bool inside = rel >= 0 && row < rows && col < row_bytes;
      std::byte expected = inside ? src[static_cast<std::size_t>(s0 + row * src_stride + col)] : std::byte{0xee};
      if (dst[static_cast<std::size_t>(at)] != expected) {
        FAIL("byte ", at, " of trial ", trial, " is wrong");
      }
    }
  }
}

TEST_CASE("device schedule: every layout kind, world sizes 1-8, memory limits, element types") {
  for (index_t n : {1, 2, 3, 4, 8}) {
    CAPTURE(n);
    std::string N = std::to_string(n), half = std::to_string(std::max<index_t>(1, n / 2)), rest = std::to_string(n / std::max<index_t>(1, n / 2));
    std::string fewer = std::to_string(std::max<index_t>(1, n - 1));
    CHECK(run_recipes(n, "fsdp dp=" + N, "fsdp-tp dp=" + half + ",tp=" + rest, DType::fp32) == 0);
    CHECK(run_recipes(n, "fsdp-tp dp=1,tp=" + N, "fsdp dp=" + fewer, DType::fp32) == 0);
    CHECK(run_recipes(n, "zero3 dp=" + N, "zero3 dp=" + fewer, DType::fp32) == 0);
    CHECK(run_recipes(n, "zero1 dp=" + N, "megatron-distopt dp=" + half + ",tp=1,bucket=64", DType::fp32) == 0);
    CHECK(run_recipes(n, "fsdp dp=" + N, "zero2 dp=" + N, DType::bf16) == 0);
    CHECK(run_recipes(n, "zero3 dp=" + N, "replicated ranks=1", DType::fp16) == 0);
    CHECK(run_recipes(n, "replicated ranks=" + N, "zero3 dp=" + N, DType::int64) == 0);
    CHECK(run_recipes(n, "zero3 dp=" + N, "fsdp-tp dp=" + half + ",tp=" + rest, DType::fp32, 8 * 2 * n) == 0);
    CHECK(run_recipes(n, "fsdp dp=" + N, "zero3 dp=" + fewer, DType::bf16, 1000) == 0);
    CHECK(run_recipes(n, "fsdp dp=" + N, "fsdp dp=1", DType::bytes, 104) == 0);
    if (8 % n == 0) CHECK(run_recipes(n, "ep ep=" + N + ",dp=" + N, "ep ep=" + half + ",dp=" + N + ",experts=zero3", DType::fp32, 4096) == 0);
  }
}

TEST_CASE("device schedule: Partial reductions of every op, staged and local") {
  for (index_t n : {1, 2, 3, 4}) {
    std::string N = std::to_string(n);
    struct Case {
      const char* op;
      DType dtype;
    };
    for (Case c : {Case{"sum", DType::fp32}, Case{"avg", DType::bf16}, Case{"max", DType::int64}, Case{"min", DType::fp16}, Case{"product", DType::fp64}}) {
      CAPTURE(c.op);
      MeshLayout src(DeviceMesh::parse("a=" + N), parse_placements(std::string("P(") + c.op + ")"), Dims{9, 5});
      MeshLayout dst(DeviceMesh::parse("a=" + N), parse_placements("S(0)"), Dims{9, 5});
      CHECK(run_schedules(one_tensor(src, dst, c.dtype), n, 0) == 0);
      CHECK(run_schedules(one_tensor(src, dst, c.dtype), n, 16 * n) == 0);
    }
  }
  MeshLayout src(DeviceMesh::parse("a=2,b=2"), parse_placements("P(sum),S(1)"), Dims{6, 7});
  MeshLayout dst(DeviceMesh::parse("a=4"), parse_placements("R"), Dims{6, 7});
  CHECK(run_schedules(one_tensor(src, dst, DType::fp32), 4, 0) == 0);
}

TEST_CASE("device schedule: a Partial plan of a dtype without arithmetic is refused, naming it") {
  MeshLayout src(DeviceMesh::parse("a=2"), parse_placements("P(sum)"), Dims{4});
  MeshLayout dst(DeviceMesh::parse("a=2"), parse_placements("S(0)"), Dims{4});
  SHARDALG_CHECK_THROWS_CONTAINING(run_schedules(one_tensor(src, dst, DType::bytes), 2, 0), Error, "reductions of dtype 'bytes' are not supported");
}
