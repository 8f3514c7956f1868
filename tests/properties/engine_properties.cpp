// Laws of the engine (exec/engine.hpp) on random plans, every rank a thread of one process
// (tests/exec/thread_communicator.hpp): whatever the layouts, memory limit, communicator staging limit, message form
// (packed, or rows in place) and number of runs of a prepared reshard, every destination element
// a rank holds ends with the value its source holds (or the reduction of the Partial sources).
#include "generators.hpp"

#include <algorithm>
#include <string>

#include "../exec/test_models.hpp"
#include "../exec/thread_communicator.hpp"

using namespace shardalg;
using namespace shardalg::testing;

namespace {

// The ranks either layout uses: 0 .. the highest.
index_t world_size(const ModelReshardPlan& plan) {
  index_t size = 1;
  for (const ModelLayout* layout : {&plan.source(), &plan.destination()})
    if (!layout->ranks().empty()) size = std::max(size, layout->ranks().back() + 1);
  return size;
}

struct RunChoice {
  index_t memory_limit;   // staging per rank (0: none)
  index_t staging_limit;  // the communicator's own staging per batch of sends (0: unbounded)
  bool in_place;          // rows in place (StridedCommunicator) or packed
  int runs;               // 0: one execute call; n: a PreparedReshard run n times
};

RunChoice gen_run_choice(index_t ranks) {
  // A limit must leave 8 bytes per message; a rank has at most 2 * ranks messages, ranks sends.
  index_t limit = *rc::gen::element<index_t>(0, 16 * ranks, 16 * ranks + 40, 1000);
  index_t staging = *rc::gen::element<index_t>(0, 0, 8 * ranks, 8 * ranks + 24, 600);
  return {limit, staging, *rc::gen::arbitrary<bool>(), *rc::gen::inRange(0, 3)};
}

// Runs the plan on every rank (one thread each) and returns the destination elements that do
// not hold their expected value, summed over ranks, or -1 when a rank checked fewer elements
// than it holds.
template <bool Strided, bool Bounded>
index_t mismatches_after_running(const ModelReshardPlan& plan, const RunChoice& choice) {
  ThreadWorld world(world_size(plan));
  std::vector<index_t> bad(static_cast<std::size_t>(world.size()), 0);
  world.run([&](index_t rank) {
    auto make_communicator = [&] {
      if constexpr (Bounded)
        return BoundedThreadCommunicator<Strided>(world, rank, choice.staging_limit);
      else
        return ThreadCommunicator<Strided>(world, rank);
    };
    auto comm = make_communicator();
    RankPart part(plan, rank);
    Buffers b = buffers_for(plan, rank, 5);
    ExecuteOptions options;
    options.memory_limit = choice.memory_limit;
    options.timeout_seconds = 30;
    auto sources = std::span<const SourceBuffer>(b.sources);
    auto destinations = std::span<const DestinationBuffer>(b.destinations);
    index_t held = 0;
    for (std::size_t t = 0; t < plan.destination().size(); ++t)
      if (plan.destination()[t].layout.mesh().contains(rank)) held += plan.destination()[t].layout.held_elements(rank);
    auto count = [&](std::uint64_t seed) {
      DataCheck check = check_destination_data(plan, rank, b.destination_data, seed);
      bad[static_cast<std::size_t>(rank)] += check.elements == held ? check.mismatches : held + 1;
    };
    if (choice.runs == 0) {
      execute(plan, part, sources, destinations, comm, options);
      count(5);
      return;
    }
    PreparedReshard reshard(plan, part, sources, destinations, comm, options);
    for (int run = 0; run < choice.runs; ++run) {
      std::uint64_t seed = 5 + static_cast<std::uint64_t>(run);
      std::vector<std::vector<std::byte>> data = make_source_data(plan, rank, seed);
      for (std::size_t k = 0; k < data.size(); ++k) std::copy(data[k].begin(), data[k].end(), b.source_data[k].begin());
      reshard.run();
      count(seed);
    }
  });
  index_t total = 0;
  for (index_t n : bad) total += n;
  return total;
}

index_t mismatches_after_running(const ModelReshardPlan& plan) {
  RunChoice choice = gen_run_choice(world_size(plan));
  if (choice.staging_limit > 0)
    return choice.in_place ? mismatches_after_running<true, true>(plan, choice) : mismatches_after_running<false, true>(plan, choice);
  return choice.in_place ? mismatches_after_running<true, false>(plan, choice) : mismatches_after_running<false, false>(plan, choice);
}

// A random mesh of at most 8 ranks (the threads of one case).
DeviceMesh gen_thread_mesh() {
  DeviceMesh mesh = *gen_mesh();
  while (mesh.size() > 8) mesh = *gen_mesh();
  return mesh;
}

}  // namespace

static_assert(StridedCommunicator<ThreadCommunicator<true>> && Communicator<ThreadCommunicator<false>> &&
                  !StridedCommunicator<ThreadCommunicator<false>> && !BoundedCommunicator<ThreadCommunicator<true>> &&
                  BoundedCommunicator<BoundedThreadCommunicator<true>> && !StridedCommunicator<BoundedThreadCommunicator<false>>,
              "the thread communicator models the engine's communicator concepts");

TEST_CASE("properties of the engine") {
  SHARDALG_PROPERTY("whole-model reshards between random recipes deliver every element", [] {
    ModelSpec model{"random", {}};
    int count = *rc::gen::inRange(1, 5);
    DType dtype = *rc::gen::element(DType::fp32, DType::bf16, DType::int64, DType::bytes);
    for (int i = 0; i < count; ++i) {
      TensorRole role = *rc::gen::element(TensorRole::column_parallel, TensorRole::row_parallel, TensorRole::replicated,
                                          TensorRole::expert_w1, TensorRole::expert_w2);
      auto extent = [] { return *rc::gen::inRange<index_t>(2, 7); };
      Dims shape;
      if (role == TensorRole::replicated) {  // a vector, or a scalar
        if (*rc::gen::arbitrary<bool>()) shape = Dims{*rc::gen::inRange<index_t>(2, 10)};
      } else if (is_expert(role)) {
        shape = Dims{4, extent(), extent()};  // 4 experts: EP sizes 1, 2, 4
      } else {
        shape = Dims{extent(), extent()};
      }
      std::string name = std::to_string(i);
      model.tensors.push_back(ModelTensor{name + "t", shape, role, dtype});
    }
    auto gen_recipe = [] {
      std::string dp = std::to_string(*rc::gen::inRange(1, 5)), tp = std::to_string(*rc::gen::inRange(1, 3));
      std::string kind = *rc::gen::element<std::string>("replicated", "fsdp", "fsdp-tp", "zero3", "zero1", "megatron-distopt", "ep");
      if (kind == "replicated") return kind + " ranks=" + dp;
      if (kind == "fsdp" || kind == "zero3") return kind + " dp=" + dp;
      if (kind == "ep") {
        index_t ep = *rc::gen::element<index_t>(1, 2, 4);
        std::string experts = *rc::gen::element<std::string>("fsdp", "zero1", "zero3");
        return "ep ep=" + std::to_string(ep) + ",dp=" + std::to_string(ep * *rc::gen::inRange<index_t>(1, 3)) + ",experts=" + experts;
      }
      return kind + " dp=" + dp + ",tp=" + tp;
    };
    ModelReshardPlan plan(layout_model(model, gen_recipe()), layout_model(model, gen_recipe()));
    RC_ASSERT(mismatches_after_running(plan) == 0);
  });

  SHARDALG_PROPERTY("Partial sources are reduced into any placement, on other meshes too", [] {
    Dims shape = *gen_shape();
    DeviceMesh from = gen_thread_mesh(), to = gen_thread_mesh();
    std::vector<Placement> sources, destinations;
    ReduceOp op = *rc::gen::element(ReduceOp::sum, ReduceOp::max, ReduceOp::min);
    for (std::size_t m = 0; m < from.ndim(); ++m) {
      Placement p = *gen_placement(shape.size());
      sources.push_back(p.is_partial() || *rc::gen::arbitrary<bool>() ? Placement::partial(op) : p);  // one op per layout
    }
    for (std::size_t m = 0; m < to.ndim(); ++m) {
      Placement p = *gen_placement(shape.size());
      destinations.push_back(p.is_partial() ? Placement::replicate() : p);
    }
    DType dtype = *rc::gen::element(DType::fp32, DType::int64);
    ModelReshardPlan plan = one_tensor(MeshLayout(from, sources, shape), MeshLayout(to, destinations, shape), dtype);
    RC_ASSERT(mismatches_after_running(plan) == 0);
  });
}

// Messages of megabytes: staged (a column block), direct (whole rows to a permuted mesh) and rows
// in place, whole and in rounds of 1.5 MiB that cut them where no box ends. Sender and receiver
// must cut every stream alike.
TEST_CASE("messages of megabytes arrive whole, in rounds too") {
  auto fp32 = [](std::string name, MeshLayout layout) { return NamedTensorLayout{std::move(name), DType::fp32, std::move(layout)}; };
  constexpr index_t mib = index_t{1} << 20;
  index_t segment_rows = mib / 4 / 1024;  // rows of 1024 fp32 in a MiB
  Dims wide{5 * segment_rows + 3, 1024}, tall{4 * segment_rows + 1, 1024};
  DeviceMesh swapped({"dp"}, Dims{2}, {1, 0});
  ModelLayout source({fp32("columns", MeshLayout::parse("dp=2", "S(1)", wide)), fp32("rows", MeshLayout(swapped, {Placement::shard(0)}, tall))});
  ModelLayout destination({fp32("columns", MeshLayout::parse("dp=2", "S(0)", wide)), fp32("rows", MeshLayout::parse("dp=2", "S(0)", tall))});
  ModelReshardPlan plan(source, destination);
  for (index_t memory_limit : {index_t{0}, 3 * mib + 8})
    for (bool in_place : {false, true}) {
      CAPTURE(memory_limit);
      CAPTURE(in_place);
      RunChoice choice{memory_limit, 0, in_place, 0};
      CHECK((in_place ? mismatches_after_running<true, false>(plan, choice) : mismatches_after_running<false, false>(plan, choice)) == 0);
    }
}
