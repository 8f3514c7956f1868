// The NCCL backend on a GPU (run by scripts/gpu.sh on a GPU machine; skipped, exit 77, without a
// device): the copy, reduction and fill kernels against their host reference on random data,
// and execute_nccl and PreparedNcclReshard on a one-rank communicator (NCCL allows one rank per
// GPU; multi-rank schedules are proven on the host by tests/exec/nccl/device_schedule_test.cpp and the
// MPI engine tests).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>
#include <random>

#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/host/program_simulator.hpp"
#include "shardalg/exec/nccl/nccl_collective_program.hpp"
#include "shardalg/exec/nccl/nccl_executor.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "../exec/test_models.hpp"

using namespace shardalg;
using testing::one_tensor;
using testing::small_model;

namespace {

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(rc));
}

std::vector<std::byte> download(const DeviceBuffer& buffer, std::size_t bytes) {
  std::vector<std::byte> host(bytes);
  if (bytes) check(cudaMemcpy(host.data(), buffer.data(), bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  return host;
}
DeviceBuffer upload(const std::vector<std::byte>& host) {
  DeviceBuffer buffer(host.size(), nullptr);
  if (!host.empty()) check(cudaMemcpy(buffer.data(), host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  return buffer;
}

// A batch with its descriptors in device memory.
DeviceBuffer descriptors_of(const CopyBatch& batch) {
  DeviceBuffer d(batch.copies().size() * sizeof(BoxCopy), nullptr);
  check(cudaMemcpy(d.data(), batch.copies().data(), d.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  return d;
}
const BoxCopy* as_copies(const DeviceBuffer& d) { return reinterpret_cast<const BoxCopy*>(d.data()); }

// Random strided boxes between two buffers, built twice: over device and over host addresses.
struct RandomBoxes {
  std::vector<std::byte> src, dst;
  CopyBatch host, device;
  RandomBoxes(std::mt19937_64& random, std::byte* device_src, std::byte* device_dst, std::size_t bytes, index_t element) : src(bytes), dst(bytes) {
    for (auto& b : src) b = static_cast<std::byte>(random());
    for (auto& b : dst) b = static_cast<std::byte>(random());
    // Disjoint boxes: box k owns bytes [k * bytes / 8, (k + 1) * bytes / 8) of both buffers.
    index_t region = static_cast<index_t>(bytes) / 8;
    for (index_t k = 0; k < 8; ++k) {
      index_t rows = 1 + static_cast<index_t>(random() % 4), cols = 1 + static_cast<index_t>(random() % 5);
      index_t row_bytes = element * (1 + static_cast<index_t>(random() % 700));
      index_t inner = row_bytes + element * static_cast<index_t>(random() % 3), outer = inner * cols;
      if (rows * outer + 64 > region) continue;
      index_t s = k * region + element * static_cast<index_t>(random() % 8), d = k * region + element * static_cast<index_t>(random() % 8);
      Dims shape{rows, cols}, strides{outer, inner};
      host.add(src.data() + s, dst.data() + d, shape, strides, strides, row_bytes);
      device.add(device_src + s, device_dst + d, shape, strides, strides, row_bytes);
    }
  }
};

// Rank 0's buffers of a plan (generated from `seed`) on the host and copied to the GPU: the
// same sizes and dtypes, device memory.
struct GpuBuffers {
  testing::Buffers host;
  std::vector<DeviceBuffer> device_sources, device_destinations;
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;

  GpuBuffers(const ModelReshardPlan& plan, std::uint64_t seed) : host(testing::buffers_for(plan, 0, seed)), sources(host.sources), destinations(host.destinations) {
    for (std::size_t b = 0; b < sources.size(); ++b) sources[b].data = device_sources.emplace_back(upload(host.source_data[b])).data();
    for (std::size_t b = 0; b < destinations.size(); ++b) destinations[b].data = device_destinations.emplace_back(upload(host.destination_data[b])).data();
  }
  // The destination check of the device destinations against `seed`'s data.
  DataCheck check_destinations(const ModelReshardPlan& plan, std::uint64_t seed) {
    for (std::size_t b = 0; b < destinations.size(); ++b) host.destination_data[b] = download(device_destinations[b], destinations[b].bytes);
    return check_destination_data(plan, 0, host.destination_data, seed);
  }
};

// Runs the plan on one GPU with a one-rank NCCL communicator; returns the destination check.
DataCheck run_on_gpu(NcclCommunicator& comm, const ModelReshardPlan& plan, index_t memory_limit) {
  GpuBuffers buffers(plan, 3);
  cudaStream_t stream = nullptr;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  DeviceExecuteOptions options;
  options.stream = stream;
  options.memory_limit = memory_limit;
  RankPart part(plan, 0);
  execute_nccl(plan, part, buffers.sources, buffers.destinations, comm, options);
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  check(cudaStreamDestroy(stream), "cudaStreamDestroy");
  return buffers.check_destinations(plan, 3);
}

// Prepares the plan once on one GPU and runs it three times, the device sources refilled from
// another seed before each run; the destination check of every run.
std::vector<DataCheck> run_prepared_on_gpu(NcclCommunicator& comm, const ModelReshardPlan& plan, index_t memory_limit) {
  GpuBuffers buffers(plan, 3);
  DeviceExecuteOptions options;
  options.memory_limit = memory_limit;
  RankPart part(plan, 0);
  PreparedNcclReshard reshard(plan, part, buffers.sources, buffers.destinations, comm, options);
  std::vector<DataCheck> checks;
  for (std::uint64_t seed : {3, 4, 5}) {
    std::vector<std::vector<std::byte>> data = make_source_data(plan, 0, seed);
    for (std::size_t b = 0; b < data.size(); ++b)
      if (!data[b].empty()) check(cudaMemcpy(buffers.device_sources[b].data(), data[b].data(), data[b].size(), cudaMemcpyHostToDevice), "cudaMemcpy");
    reshard.run();
    checks.push_back(buffers.check_destinations(plan, seed));
  }
  return checks;
}

}  // namespace

TEST_CASE("copy kernel: random strided, unaligned boxes equal the host reference byte for byte") {
  std::mt19937_64 random(1);
  const std::size_t bytes = 1 << 20;
  DeviceBuffer src(bytes, nullptr), dst(bytes, nullptr);
  for (index_t element : {1, 2, 4, 8}) {
    RandomBoxes boxes(random, src.data(), dst.data(), bytes, element);
    check(cudaMemcpy(src.data(), boxes.src.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    check(cudaMemcpy(dst.data(), boxes.dst.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    DeviceBuffer d = descriptors_of(boxes.device);
    check(cuda::launch_copies(as_copies(d), static_cast<std::int64_t>(boxes.device.copies().size()), boxes.device.units(), nullptr), "launch");
    check(cudaDeviceSynchronize(), "copy kernel");
    run_on_host(boxes.host);
    CHECK(download(dst, bytes) == boxes.dst);
  }
}

TEST_CASE("reduction and fill kernels: every dtype and op equal exec/element_ops on the host") {
  std::mt19937_64 random(2);
  const std::size_t bytes = 1 << 18;
  DeviceBuffer src(bytes, nullptr), dst(bytes, nullptr);
  for (DType dtype : {DType::fp32, DType::fp64, DType::int32, DType::int64, DType::int8, DType::bf16, DType::fp16})
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::product}) {
      CAPTURE(dtype);
      CAPTURE(static_cast<int>(op));
      index_t element = element_bytes(dtype);
      RandomBoxes boxes(random, src.data(), dst.data(), bytes, element);
      // Values small integers, so that every op is exact in every type.
      for (std::size_t at = 0; at + static_cast<std::size_t>(element) <= bytes; at += static_cast<std::size_t>(element)) {
        store_integer(dtype, boxes.src.data() + at, static_cast<std::int64_t>(random() % 7) - 3);
        store_integer(dtype, boxes.dst.data() + at, static_cast<std::int64_t>(random() % 7) - 3);
      }
      check(cudaMemcpy(src.data(), boxes.src.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
      check(cudaMemcpy(dst.data(), boxes.dst.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
      DeviceBuffer d = descriptors_of(boxes.device);
      auto count = static_cast<std::int64_t>(boxes.device.copies().size());
      check(cuda::launch_reductions(as_copies(d), count, boxes.device.units(), dtype, op, 2, nullptr), "launch");
      check(cudaDeviceSynchronize(), "reduction kernel");
      for (const BoxCopy& c : boxes.host.copies())
        for (std::int64_t unit = 0; unit < units_of(c); ++unit) {
          UnitSpan span = unit_span(c, unit);
          reduce_bytes(dtype, op, 2, span.dst, span.src, span.bytes / element);
        }
      CHECK(download(dst, bytes) == boxes.dst);
      check(cuda::launch_fill_identity(as_copies(d), count, boxes.device.units(), dtype, op, nullptr), "launch");
      check(cudaDeviceSynchronize(), "fill kernel");
      for (const BoxCopy& c : boxes.host.copies())
        for (std::int64_t unit = 0; unit < units_of(c); ++unit) {
          UnitSpan span = unit_span(c, unit);
          fill_identity(dtype, op, span.dst, span.bytes / element);
        }
      CHECK(download(dst, bytes) == boxes.dst);
    }
}

TEST_CASE("execute_nccl on a one-rank communicator: local reshards of every kind, rounds, reductions") {
  NcclCommunicator comm = NcclCommunicator::single();
  for (auto [from, to, dtype] : {std::tuple{"fsdp dp=1", "zero3 dp=1", DType::fp32}, std::tuple{"fsdp-tp dp=1,tp=1", "zero2 dp=1", DType::bf16},
                                 std::tuple{"zero1 dp=1", "megatron-distopt dp=1,tp=1,bucket=64", DType::fp16},
                                 std::tuple{"replicated ranks=1", "fsdp dp=1", DType::int64}}) {
    CAPTURE(from);
    ModelSpec model = small_model(dtype);
    ModelReshardPlan plan(layout_model(model, from), layout_model(model, to));
    for (index_t limit : {index_t{0}, index_t{4096}}) {
      DataCheck result = run_on_gpu(comm, plan, limit);
      CHECK(result.elements > 0);
      CHECK(result.mismatches == 0);
    }
  }
  for (const char* op : {"sum", "avg", "max", "min", "product"}) {
    MeshLayout src(DeviceMesh::parse("a=1"), parse_placements(std::string("P(") + op + ")"), Dims{9, 5});
    MeshLayout dst(DeviceMesh::parse("a=1"), parse_placements("R"), Dims{9, 5});
    DataCheck result = run_on_gpu(comm, one_tensor(src, dst, DType::fp32), 0);
    CHECK(result.mismatches == 0);
  }
}

TEST_CASE("PreparedNcclReshard: prepared once, run three times on refilled sources; Partial restarts from the identity") {
  NcclCommunicator comm = NcclCommunicator::single();
  ModelSpec model = small_model(DType::bf16);
  ModelReshardPlan flat(layout_model(model, "fsdp-tp dp=1,tp=1"), layout_model(model, "zero2 dp=1"));
  MeshLayout src(DeviceMesh::parse("a=1"), parse_placements("P(sum)"), Dims{9, 5});
  MeshLayout dst(DeviceMesh::parse("a=1"), parse_placements("R"), Dims{9, 5});
  ModelReshardPlan partial = one_tensor(src, dst, DType::fp32);
  for (const ModelReshardPlan* plan : {&flat, &partial})
    for (index_t limit : {index_t{0}, index_t{4096}})
      for (const DataCheck& result : run_prepared_on_gpu(comm, *plan, limit)) {
        CHECK(result.elements > 0);
        CHECK(result.mismatches == 0);
      }
}

TEST_CASE("execute_nccl: a wrong buffer is named before anything moves") {
  NcclCommunicator comm = NcclCommunicator::single();
  ModelSpec model = small_model(DType::fp32);
  ModelReshardPlan plan(layout_model(model, "fsdp dp=1"), layout_model(model, "zero3 dp=1"));
  std::vector<std::vector<std::byte>> source_data = make_source_data(plan, 0, 3), destination_data = make_destination_buffers(plan, 0);
  std::vector<SourceBuffer> sources;
  std::vector<DestinationBuffer> destinations;
  for (auto& d : source_data) sources.push_back({d.data(), d.size() - 4, DType::fp32});
  for (auto& d : destination_data) destinations.push_back({d.data(), d.size(), DType::fp32});
  RankPart part(plan, 0);
  CHECK_THROWS_WITH(execute_nccl(plan, part, sources, destinations, comm), doctest::Contains("rank 0 source buffer 0"));
}

TEST_CASE("NcclCollectiveProgram on one rank: every step kind equals the host reference (program_simulator)") {
  NcclCommunicator world = NcclCommunicator::single();
  DeviceMesh mesh = DeviceMesh::parse("a=1");
  Dims shape{6, 4};
  auto layout = [&](const char* placements) { return MeshLayout(mesh, parse_placements(placements), shape); };
  struct Case {
    const char* from;
    const char* to;
    LoweredStep step;
  };
  for (const Case& c : {Case{"S(0)", "R", {CollectiveKind::all_gather, {0}, 0}}, Case{"R", "S(1)", {CollectiveKind::local, {0}, 1}},
                        Case{"S(0)", "S(1)", {CollectiveKind::all_to_all, {0}, 0, 1}},
                        Case{"P(sum)", "S(0)", {CollectiveKind::reduce_scatter, {0}, 0}}, Case{"P(max)", "R", {CollectiveKind::all_reduce, {0}}}}) {
    CAPTURE(c.from);
    CollectiveProgram program;
    program.steps = {c.step};
    program.states = {layout(c.from), layout(c.to)};
    std::vector<float> global(24);
    for (std::size_t i = 0; i < global.size(); ++i) global[i] = static_cast<float>(i) - 5;
    RankBuffers<float> sources = scatter_to_ranks(TensorLayout(program.states.front()), global);
    RankBuffers<float> expected = run_collective_program(program, sources);
    std::vector<std::byte> tile(sources.at(0).size() * sizeof(float));
    std::memcpy(tile.data(), sources.at(0).data(), tile.size());
    DeviceBuffer device = upload(tile);
    NcclCollectiveProgram run(program, world);
    DeviceTile out = run.run(device.data(), tile.size(), DType::fp32, nullptr);
    std::vector<std::byte> result = download(out.buffer, out.bytes);
    REQUIRE(result.size() == expected.at(0).size() * sizeof(float));
    CHECK(std::memcmp(result.data(), expected.at(0).data(), result.size()) == 0);
  }
}

int main(int argc, char** argv) {
  int devices = 0;
  cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) {
    std::cout << "SKIP: no CUDA device (" << (rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices")
              << "); the GPU tests run on a GPU machine with scripts/gpu.sh\n";
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
