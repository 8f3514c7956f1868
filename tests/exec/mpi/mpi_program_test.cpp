// Lowered collective programs run with MPI collectives, under mpirun with 1, 2, 3, 4 and 8
// processes: every rank's resulting tile compared with the direct plan's (host simulator),
// Partial reductions, strided and uneven layouts, element types, bad buffers, a late rank.
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "../../source_tiles.hpp"
#include "shardalg/exec/mpi/mpi_collective_program.hpp"

using namespace shardalg;

namespace {

int failures = 0;
int rank = 0, world = 1;

void expect(bool ok, const std::string& what) {
  int bad = ok ? 0 : 1, total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::cout << (total ? "FAIL " : "ok   ") << what << (total ? " (" + std::to_string(total) + " ranks)" : "") << "\n";
  if (total) ++failures;
}

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// Lowers src -> dst, runs the program with MPI and compares this rank's tile with the plan's.
template <class T>
void check_case(const std::string& mesh, const std::string& src_text, const std::string& dst_text, const Dims& shape, DType dtype) {
  MeshLayout src = MeshLayout::parse(mesh, src_text, shape), dst = MeshLayout::parse(mesh, dst_text, shape);
  auto program = search_collectives(src, dst, static_cast<index_t>(sizeof(T)));
  bool ok = program.has_value();
  if (ok) {
    RankBuffers<T> sources = testing::partial_source_tiles<T>(src);
    ReshardPlan plan(src, dst);
    RankBuffers<T> expected = simulate(plan, plan.all_transfers(), sources);
    MpiCollectiveProgram runner(*program);
    std::vector<std::byte> got = runner.run(bytes_of(sources.at(rank)), dtype);
    ok = got == bytes_of(expected.at(rank));
  }
  expect(ok, detail::concat(mesh, "  ", src_text, " -> ", dst_text, " ", shape, " ", dtype, program ? detail::concat("  (", program->collectives(), " collectives)") : ""));
}

}  // namespace

// A rank that never joins: the others time out naming the call, then abort the job (collectives
// cannot be cancelled), as a framework would.
int late_rank_case() {
  MeshLayout src = MeshLayout::parse("dp=" + std::to_string(world), "S(0)", Dims{16}), dst = MeshLayout::parse("dp=" + std::to_string(world), "R", Dims{16});
  MpiCollectiveProgram runner(*search_collectives(src, dst, 4), MPI_COMM_WORLD, 0.3);
  std::vector<std::byte> source(static_cast<std::size_t>(src.tile(rank).volume() * 4));
  if (rank == world - 1) std::this_thread::sleep_for(std::chrono::seconds(20));
  try {
    runner.run(source, DType::fp32);
  } catch (const Error& e) {
    std::cout << "rank " << rank << ": " << e.what() << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 3);
  }
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (argc > 1 && std::string(argv[1]) == "--late-rank") return late_rank_case();
  try {
    if (world == 8) {
      // PyTorch's planner cases, and uneven and Partial ones, on (2,2,2).
      for (auto [s, d] : std::vector<std::pair<const char*, const char*>>{{"S(0),S(0),S(0)", "S(1),S(1),S(1)"}, {"S(0),S(1),S(0)", "S(1),S(0),S(0)"},
                                                                         {"S(0),S(1),S(2)", "S(2),S(1),S(0)"}, {"S(1),S(0),S(0)", "R,S(0),S(0)"},
                                                                         {"S(1),R,S(0)", "R,S(0),S(0)"}, {"S(0),S(0),S(1)", "S(0),S(1),S(2)"}}) {
        check_case<float>("a=2,b=2,c=2", s, d, Dims{8, 8, 8}, DType::fp32);
        check_case<std::int64_t>("a=2,b=2,c=2", s, d, Dims{7, 5, 3}, DType::int64);
      }
      check_case<std::int64_t>("a=2,b=2,c=2", "P,S(0),P", "S(1),S(0),R", Dims{8, 6}, DType::int64);
      check_case<std::int64_t>("a=2,b=2,c=2", "P(max),P(max),P(max)", "R,R,R", Dims{5, 3}, DType::int64);
    } else if (world == 4) {
      check_case<float>("dp=2,tp=2", "_S(0,2),S(0)", "R,S(1)", Dims{8, 4}, DType::fp32);
      check_case<std::int64_t>("dp=2,tp=2", "P,P", "S(0),S(1)", Dims{6, 5}, DType::int64);
      check_case<std::int64_t>("dp=2,tp=2", "P(min),S(1)", "S(1),R", Dims{5, 3}, DType::int64);
      check_case<double>("dp=4", "S(0)", "S(1)", Dims{9, 7}, DType::fp64);
      check_case<std::int32_t>("dp=4", "P", "S(1)", Dims{3, 10}, DType::int32);
    } else if (world == 3) {
      check_case<std::int64_t>("dp=3", "P", "S(0)", Dims{7, 4}, DType::int64);
      check_case<float>("dp=3", "S(0)", "S(1)", Dims{7, 4}, DType::fp32);
      check_case<float>("a=3,b=1", "S(1),P", "S(0),R", Dims{4, 5}, DType::fp32);
    } else if (world == 2) {
      check_case<std::int64_t>("dp=2", "P", "R", Dims{5}, DType::int64);
      check_case<float>("dp=2", "S(0)", "S(1)", Dims{3, 3}, DType::fp32);
    } else {
      check_case<std::int64_t>("dp=1", "P", "R", Dims{4}, DType::int64);
      check_case<float>("dp=1", "S(0)", "S(1)", Dims{3, 3}, DType::fp32);
    }

    // A rank whose buffer has the wrong size fails before anything moves; the others name it.
    MeshLayout src = MeshLayout::parse("dp=" + std::to_string(world), "S(0)", Dims{16}),
               dst = MeshLayout::parse("dp=" + std::to_string(world), "R", Dims{16});
    auto program = *search_collectives(src, dst, 4);
    {
      MpiCollectiveProgram runner(program);
      std::vector<std::byte> source(static_cast<std::size_t>(src.tile(rank).volume() * 4 + (rank == 0 ? 4 : 0)));
      std::string message;
      try {
        runner.run(source, DType::fp32);
      } catch (const Error& e) {
        message = e.what();
      }
      expect(rank == 0 ? message.find("rank 0 source buffer has") != std::string::npos
                       : message.find("MPI collective program: rank 0 failed its checks; nothing was sent") != std::string::npos,
             "a wrong-sized source buffer is named before anything moves");
    }
  } catch (const std::exception& e) {
    std::cerr << "rank " << rank << ": " << e.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Finalize();
  if (rank == 0) std::cout << (failures ? "FAILED" : "all passed") << "\n";
  return failures ? 1 : 0;
}
