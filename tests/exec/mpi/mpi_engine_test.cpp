// The engine over MPI, run by ctest under mpirun with 1, 2, 3, 4 and 8 processes: reshards of
// every layout kind on generated data, every destination element compared with the value it must
// have; memory limits that force rounds; element types; bad buffers and silent peers. Each
// reshard runs over MPI messages (MpiCommunicator) and over a shared-memory window
// (MpiSharedMemoryCommunicator, also with a segment small enough to force rounds).
#include <mpi.h>

#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "shardalg/exec/check_data.hpp"
#include "shardalg/exec/engine.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
#include "shardalg/exec/mpi/mpi_shared_memory_communicator.hpp"
#include "shardalg/model/layout_recipe.hpp"
#include "../test_models.hpp"

using namespace shardalg;
using testing::one_tensor;
using testing::small_model;

namespace {

int failures = 0;

void expect(MpiCommunicator& comm, bool ok, const std::string& what) {
  index_t bad = comm.all_sum(ok ? 0 : 1);
  if (comm.rank() == 0) std::cout << (bad ? "FAIL " : "ok   ") << what << (bad ? " (" + std::to_string(bad) + " ranks)" : "") << "\n";
  if (bad) ++failures;
}

// Runs `body` (returning whether this rank passed) on every rank; an Error fails the rank and is
// printed with its rank.
template <class F>
void expect_on_every_rank(MpiCommunicator& comm, const std::string& what, F body) {
  bool ok = false;
  try {
    ok = body();
  } catch (const Error& e) {
    std::cerr << "rank " << comm.rank() << ": " << e.what() << "\n";
  }
  expect(comm, ok, what);
}

// Runs the plan over `transport` and checks every destination element on every rank; `comm`
// gathers the verdict.
template <class C>
void check_reshard(MpiCommunicator& comm, C& transport, const ModelReshardPlan& plan, const std::string& what, index_t memory_limit = 0,
                   bool staged = false) {
  expect_on_every_rank(comm, what, [&] {
    bool ok = true;
    RankPart part(plan, comm.rank());
    testing::Buffers b = testing::buffers_for(plan, comm.rank(), 7);
    ExecuteOptions options;
    options.memory_limit = memory_limit;
    options.in_place_messages = !staged;
    index_t progress_calls = 0;
    options.progress = [&](index_t done, index_t total) { ok = ok && done <= total; ++progress_calls; };
    ExecuteStats stats =
        execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), transport, options);
    DataCheck check = check_destination_data(plan, comm.rank(), b.destination_data, 7);
    ok = ok && check.mismatches == 0 && (memory_limit == 0 || stats.peak_staging <= memory_limit);
    index_t held = 0;
    for (std::size_t t = 0; t < plan.destination().size(); ++t)
      if (plan.destination()[t].layout.mesh().contains(comm.rank())) held += plan.destination()[t].layout.held_elements(comm.rank());
    ok = ok && check.elements == held;
    return ok && (part.receives().empty() || progress_calls > 0);
  });
}

template <class C>
void check_recipes(MpiCommunicator& comm, C& transport, const std::string& label, const std::string& from, const std::string& to, DType dtype = DType::fp32,
                   index_t memory_limit = 0, bool staged = false) {
  ModelSpec model = small_model(dtype);
  ModelReshardPlan plan(layout_model(model, from), layout_model(model, to));
  check_reshard(comm, transport, plan,
                label + "\"" + from + "\" -> \"" + to + "\" " + std::string(to_string(dtype)) + (memory_limit ? " limit " + std::to_string(memory_limit) : "") +
                    (staged ? " staged" : ""),
                memory_limit, staged);
}

// A reshard prepared once and run three times, the sources refilled with other data between
// runs (another seed): every run must deliver the data the sources hold at that run, Partial
// destinations restarting from the identity rather than accumulating.
template <class C>
void check_prepared(MpiCommunicator& comm, C& transport, const ModelReshardPlan& plan, const std::string& what, index_t memory_limit = 0) {
  expect_on_every_rank(comm, "prepared once, run 3 times: " + what, [&] {
    bool ok = true;
    RankPart part(plan, comm.rank());
    testing::Buffers b = testing::buffers_for(plan, comm.rank(), 11);
    ExecuteOptions options;
    options.memory_limit = memory_limit;
    PreparedReshard reshard(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), transport, options);
    for (std::uint64_t seed : {11, 12, 13}) {
      std::vector<std::vector<std::byte>> data = make_source_data(plan, comm.rank(), seed);
      for (std::size_t k = 0; k < data.size(); ++k) std::copy(data[k].begin(), data[k].end(), b.source_data[k].begin());
      ExecuteStats stats = reshard.run();
      DataCheck check = check_destination_data(plan, comm.rank(), b.destination_data, seed);
      ok = ok && check.mismatches == 0 && (memory_limit == 0 || stats.peak_staging <= memory_limit);
    }
    return ok;
  });
}

// Reshards of every layout kind over `transport` (`label` prefixes the test names).
template <class C>
void check_every_layout_kind(MpiCommunicator& comm, C& transport, const std::string& label) {
  const index_t n = comm.size();
  const std::string N = std::to_string(n);
  const index_t half = std::max<index_t>(1, n / 2);
  // Mesh <-> mesh across meshes and world sizes (a subset of the ranks, then all of them).
  check_recipes(comm, transport, label, "fsdp dp=" + N, "fsdp-tp dp=" + std::to_string(half) + ",tp=" + std::to_string(n / half));
  check_recipes(comm, transport, label, "fsdp-tp dp=1,tp=" + N, "fsdp dp=" + std::to_string(std::max<index_t>(1, n - 1)));
  // ZeRO DP change (elastic), ZeRO-1/2 to Megatron, mesh <-> flat, consolidation.
  check_recipes(comm, transport, label, "zero3 dp=" + N, "zero3 dp=" + std::to_string(std::max<index_t>(1, n - 1)));
  check_recipes(comm, transport, label, "zero1 dp=" + N, "megatron-distopt dp=" + std::to_string(half) + ",tp=1,bucket=64");
  check_recipes(comm, transport, label, "fsdp dp=" + N, "zero2 dp=" + N, DType::bf16);
  check_recipes(comm, transport, label, "zero3 dp=" + N, "replicated ranks=1", DType::fp16);
  check_recipes(comm, transport, label, "replicated ranks=" + N, "zero3 dp=" + N, DType::int64);
  // EP size change (experts FSDP, then ZeRO-3 over the expert-replica group).
  for (index_t ep : {index_t{8}, index_t{4}, index_t{2}, index_t{1}})
    if (n % ep == 0 && ep <= n) {
      std::string to_ep = std::to_string(std::max<index_t>(1, ep / 2));
      check_recipes(comm, transport, label, "ep ep=" + std::to_string(ep) + ",dp=" + N, "ep ep=" + to_ep + ",dp=" + N + ",experts=zero3");
      break;
    }
  // Memory limits: messages cut into pieces over rounds (odd limits included), element types.
  check_recipes(comm, transport, label, "zero3 dp=" + N, "fsdp-tp dp=" + std::to_string(half) + ",tp=" + std::to_string(n / half), DType::fp32, 8 * 2 * n);
  check_recipes(comm, transport, label, "fsdp dp=" + N, "zero3 dp=" + std::to_string(std::max<index_t>(1, n - 1)), DType::bf16, 1000);
  check_recipes(comm, transport, label, "fsdp dp=" + N, "fsdp dp=1", DType::bytes);
  // Non-contiguous messages packed into staging instead of moved in place as derived datatypes.
  check_recipes(comm, transport, label, "zero3 dp=" + N, "fsdp-tp dp=" + std::to_string(half) + ",tp=" + std::to_string(n / half), DType::fp32, 0, true);
  check_recipes(comm, transport, label, "fsdp dp=" + N, "zero3 dp=" + std::to_string(std::max<index_t>(1, n - 1)), DType::bf16, 1000, true);
  // Partial reductions: every op, over one and two mesh dims.
  for (auto [op, dtype] : {std::pair{"sum", DType::fp32}, std::pair{"avg", DType::bf16}, std::pair{"max", DType::int64}, std::pair{"min", DType::fp16},
                           std::pair{"product", DType::fp64}}) {
    MeshLayout src(DeviceMesh::parse("a=" + N), parse_placements(std::string("P(") + op + ")"), Dims{9, 5});
    MeshLayout dst(DeviceMesh::parse("a=" + N), parse_placements("S(0)"), Dims{9, 5});
    check_reshard(comm, transport, one_tensor(src, dst, dtype), label + "P(" + op + ") -> S(0) " + std::string(to_string(dtype)));
  }
  if (n % 2 == 0) {
    MeshLayout src(DeviceMesh::parse("a=2,b=" + std::to_string(n / 2)), parse_placements("P(sum),S(1)"), Dims{6, 7});
    MeshLayout dst(DeviceMesh::parse("a=" + N), parse_placements("R"), Dims{6, 7});
    check_reshard(comm, transport, one_tensor(src, dst, DType::fp32), label + "P(sum),S(1) -> R");
  }

  // Prepared once, run repeatedly: a flat layout to a mesh, rounds, and a Partial reduction.
  {
    ModelSpec model = small_model(DType::fp32);
    check_prepared(comm, transport, ModelReshardPlan(layout_model(model, "zero3 dp=" + N), layout_model(model, "fsdp-tp dp=" + std::to_string(half) + ",tp=" + std::to_string(n / half))),
                   label + "zero3 -> fsdp-tp");
    check_prepared(comm, transport, ModelReshardPlan(layout_model(model, "fsdp dp=" + N), layout_model(model, "zero3 dp=" + std::to_string(std::max<index_t>(1, n - 1)))),
                   label + "fsdp -> zero3 limit 1000", 1000);
    MeshLayout src(DeviceMesh::parse("a=" + N), parse_placements("P(sum)"), Dims{9, 5});
    MeshLayout dst(DeviceMesh::parse("a=" + N), parse_placements("S(0)"), Dims{9, 5});
    check_prepared(comm, transport, one_tensor(src, dst, DType::fp32), label + "P(sum) -> S(0)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  {
    MpiCommunicator comm;
    const index_t n = comm.size();
    const std::string N = std::to_string(n);
    check_every_layout_kind(comm, comm, "");
    {
      MpiSharedMemoryCommunicator shared;
      check_every_layout_kind(comm, shared, "shared memory: ");
      MpiSharedMemoryCommunicator small(MPI_COMM_WORLD, std::max<index_t>(4096, 128 * n));
      check_every_layout_kind(comm, small, "shared memory, small segment: ");
    }
    // Shared memory: a segment smaller than the messages cuts them into rounds.
    {
      MeshLayout src(DeviceMesh::parse("a=" + N), parse_placements("S(0)"), Dims{64 * n, 64});
      MeshLayout dst(DeviceMesh::parse("a=1"), parse_placements("R"), Dims{64 * n, 64});
      ModelReshardPlan plan = one_tensor(src, dst, DType::fp32);
      MpiSharedMemoryCommunicator small(MPI_COMM_WORLD, std::max<index_t>(4096, 128 * n));
      expect_on_every_rank(comm, "shared memory: a segment smaller than the messages cuts them into rounds", [&] {
        RankPart part(plan, comm.rank());
        testing::Buffers b = testing::buffers_for(plan, comm.rank(), 7);
        ExecuteStats stats = execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), small);
        return check_destination_data(plan, comm.rank(), b.destination_data, 7).mismatches == 0 && (n == 1 || stats.rounds >= 4);
      });
    }
    // Shared memory: bad capacities fail on every rank, naming the value.
    expect_on_every_rank(comm, "shared memory: a capacity below the minimum is refused", [&] {
      try {
        MpiSharedMemoryCommunicator tiny(MPI_COMM_WORLD, 100);
      } catch (const Error& e) {
        return std::string(e.what()).find("capacity 100 bytes must be at least 4096") != std::string::npos;
      }
      return false;
    });
    expect_on_every_rank(comm, "shared memory: ranks that pass different capacities are refused", [&] {
      try {
        MpiSharedMemoryCommunicator uneven(MPI_COMM_WORLD, 8192 + 64 * comm.rank());
      } catch (const Error& e) {
        return n > 1 && std::string(e.what()).find("the ranks passed different capacities") != std::string::npos;
      }
      return n == 1;
    });
    // Shared memory misuse and silent peers: clear errors naming the peer, bounded waits.
    if (n >= 2) {
      std::vector<std::byte> out(64, std::byte{1}), in(64);
      auto error_of = [](auto&& f) {
        try {
          f();
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string();
      };
      {
        MpiSharedMemoryCommunicator shared(MPI_COMM_WORLD, 8192);
        std::string twice, too_big;
        if (comm.rank() == 0) {
          shared.post_send(out.data(), 16, 1, 5);
          twice = error_of([&] { shared.post_send(out.data(), 16, 1, 5); });
          std::vector<std::byte> huge(8192);
          too_big = error_of([&] { shared.post_send(huge.data(), huge.size(), 0, 5); });
          shared.wait_sends(60);
        } else if (comm.rank() == 1) {
          shared.post_receive(in.data(), 16, 0, 5);
          shared.wait_receive(60);
          shared.wait_sends(60);
        }
        expect(comm,
               comm.rank() != 0 || (twice.find("posted a second send to rank 1 in one batch") != std::string::npos &&
                                    too_big.find("message of 8192 bytes to rank 0 does not fit its segment") != std::string::npos),
               "shared memory: a second send to a peer in one batch, and a message larger than the segment, are refused");
        expect(comm, comm.rank() != 1 || in[0] == std::byte{1}, "shared memory: the message sent before the refused ones arrives");
      }
      {
        MpiSharedMemoryCommunicator shared(MPI_COMM_WORLD, 8192);
        std::string receiver, sender;
        if (comm.rank() == 0) {
          shared.post_send(out.data(), 16, 1, 5);
          sender = error_of([&] { shared.wait_sends(0.2); });
        } else if (comm.rank() == 1) {
          shared.post_receive(in.data(), 8, 0, 5);
          receiver = error_of([&] { shared.wait_receive(60); });
        }
        expect(comm,
               (comm.rank() != 1 || receiver.find("expected message 1 of 8 bytes with tag 5 from rank 0; it sent message 1 of 16 bytes") !=
                                        std::string::npos) &&
                   (comm.rank() != 0 || sender.find("timed out after 0.2 s waiting for rank 1 to receive a message") != std::string::npos),
               "shared memory: a message longer than its receive fails naming the sender; the sender's wait is bounded");
      }
      {
        MpiSharedMemoryCommunicator shared(MPI_COMM_WORLD, 8192);
        std::string waited, after;
        if (comm.rank() == 0) {
          shared.post_receive(in.data(), 8, 1, 5);
          waited = error_of([&] { shared.wait_receive(0.2); });
          after = error_of([&] { shared.post_send(out.data(), 8, 1, 5); });
        }
        expect(comm,
               comm.rank() != 0 || (waited.find("timed out after 0.2 s waiting for a message from rank 1") != std::string::npos &&
                                    after.find("an earlier wait failed; make a new communicator") != std::string::npos),
               "shared memory: a silent peer times out with its rank named, and the communicator refuses more");
      }
    }
    // A rank with a wrong buffer fails naming it; the others fail naming that rank; nothing moves.
    {
      ModelSpec model = small_model(DType::fp32);
      ModelReshardPlan plan(layout_model(model, "fsdp dp=" + N), layout_model(model, "zero3 dp=" + N));
      RankPart part(plan, comm.rank());
      testing::Buffers b = testing::buffers_for(plan, comm.rank(), 7);
      if (comm.rank() == n - 1) b.sources[1].bytes -= 4;
      std::string message;
      try {
        execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), comm);
      } catch (const Error& e) {
        message = e.what();
      }
      bool named = comm.rank() == n - 1 ? message.find("source buffer 1 (tensor 'q') has") != std::string::npos
                                        : message.find("rank " + std::to_string(n - 1) + " failed its checks") != std::string::npos;
      DataCheck after = check_destination_data(plan, comm.rank(), b.destination_data, 7);
      bool untouched = after.mismatches == after.elements;
      expect(comm, named && untouched, "bad buffer on the last rank is reported before anything moves");
      b.sources[0].dtype = DType::bf16;
      message.clear();
      try {
        execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), comm);
      } catch (const Error& e) {
        message = e.what();
      }
      expect(comm, message.find("holds bf16; the plan needs fp32") != std::string::npos || message.find("failed its checks") != std::string::npos,
             "wrong element type is reported");
    }
    // A peer that never sends: a bounded wait with a timeout naming it.
    if (n >= 2) {
      std::string message;
      std::vector<std::byte> slot(8);
      if (comm.rank() == 0) {
        MpiCommunicator lonely;
        lonely.post_receive(slot.data(), slot.size(), 1, 99);
        try {
          lonely.wait_receive(0.2);
        } catch (const Error& e) {
          message = e.what();
        }
      } else {
        MpiCommunicator lonely;  // collective construction; rank 1 never sends
      }
      expect(comm, comm.rank() != 0 || message.find("timed out after 0.2 s waiting for a message from rank 1") != std::string::npos,
             "a silent peer times out with its rank named");
    }
    // A prepared reshard whose run timed out refuses to run again: its receive may still be
    // pending in the communicator. Rank 0 gathers from rank 1, which never runs.
    if (n >= 2) {
      MeshLayout src(DeviceMesh::parse("a=2"), parse_placements("S(0)"), Dims{8});
      MeshLayout dst(DeviceMesh::parse("a=1"), parse_placements("R"), Dims{8});
      ModelReshardPlan plan = one_tensor(src, dst, DType::fp32);
      RankPart part(plan, comm.rank());
      testing::Buffers b = testing::buffers_for(plan, comm.rank(), 7);
      MpiCommunicator lonely;
      ExecuteOptions options;
      options.timeout_seconds = 0.2;
      PreparedReshard reshard(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), lonely, options);
      std::string first, second;
      if (comm.rank() == 0) {
        try {
          reshard.run();
        } catch (const Error& e) {
          first = e.what();
        }
        try {
          reshard.run();
        } catch (const Error& e) {
          second = e.what();
        }
      }
      expect(comm,
             comm.rank() != 0 || (first.find("timed out after 0.2 s waiting for a message from rank 1") != std::string::npos &&
                                  second.find("a previous run of this prepared reshard failed") != std::string::npos),
             "a prepared reshard that timed out refuses to run again");
    }
    // A rank that joins the agreement late: the others time out naming the all-reduce (not a
    // hang), and their communicator refuses another all-reduce; the late rank, whose part moves
    // nothing, still completes the abandoned all-reduce (its buffer outlives the timeout).
    if (n >= 2) {
      MeshLayout src(DeviceMesh::parse("a=" + std::to_string(n - 1)), parse_placements("S(0)"), Dims{8});
      MeshLayout dst(DeviceMesh::parse("a=" + std::to_string(n - 1)), parse_placements("R"), Dims{8});
      ModelReshardPlan plan = one_tensor(src, dst, DType::fp32);
      RankPart part(plan, comm.rank());
      testing::Buffers b = testing::buffers_for(plan, comm.rank(), 7);
      MpiCommunicator agreeing;
      ExecuteOptions options;
      const bool late = comm.rank() == n - 1;
      std::string first, second;
      if (!late) {
        options.timeout_seconds = 0.2;
        try {
          execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), agreeing, options);
        } catch (const Error& e) {
          first = e.what();
        }
        try {
          agreeing.all_max(1, 1.0);
        } catch (const Error& e) {
          second = e.what();
        }
      }
      expect(comm,
             late || (first.find("timed out after 0.2 s in MPI_Iallreduce (every rank's agreement)") != std::string::npos &&
                      second.find("an earlier all-reduce timed out; make a new communicator") != std::string::npos),
             "a rank that never joins the agreement: the others time out, and refuse another all-reduce");
      expect_on_every_rank(comm, "the late rank completes the abandoned agreement", [&] {
        if (!late) return true;
        options.timeout_seconds = 60;
        ExecuteStats stats = execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), agreeing, options);
        return stats.bytes_sent == 0 && stats.bytes_received == 0;
      });
      expect_on_every_rank(comm, "a timeout that is not positive fails before any communication", [&] {
        options.timeout_seconds = 0;
        try {
          execute(plan, part, std::span<const SourceBuffer>(b.sources), std::span<const DestinationBuffer>(b.destinations), comm, options);
        } catch (const Error& e) {
          return std::string(e.what()).find("timeout 0 s must be positive") != std::string::npos;
        }
        return false;
      });
    }
  }
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
