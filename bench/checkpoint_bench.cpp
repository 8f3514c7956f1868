// Checkpoint reading at scale (numbers in docs/benchmarks.md):
//   checkpoint_bench metadata FOLDER RANKS   parse FOLDER/.metadata (peak RSS reported), then one
//                                            rank's read plan under "fsdp dp=RANKS" for a few ranks
//   checkpoint_bench load FOLDER RANKS [cold]
//                                            rank 1's part of FOLDER under "fsdp dp=RANKS" against
//                                            reading the same byte ranges sequentially (one pread
//                                            stream per file, 16 MiB blocks); warm page cache, or
//                                            with `cold` the files dropped from it before each read
//   checkpoint_bench write FOLDER MIB FILES  a safetensors checkpoint of MIB MiB of bf16 rows
// bench/dcp_405b_metadata.py makes the Llama-3-405B metadata with torch's own classes and runs
// `metadata` in the same run as Python's pickle.load of the same file.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include "shardalg/shardalg.hpp"

using namespace shardalg;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }
// The process's peak resident memory (VmHWM: unlike getrusage's, not inherited across exec).
long peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  return -1;
}

int metadata(const std::string& folder, index_t ranks) {
  long before = peak_rss_mb();
  auto start = Clock::now();
  Checkpoint ck = Checkpoint::open(folder);
  double parse = seconds_since(start);
  std::cout << "parse_seconds " << parse << "\nchunks " << ck.layout().chunk_count() << "\ntensors " << ck.layout().tensors.size()
            << "\npeak_rss_mb " << peak_rss_mb() << " (before parsing " << before << ")\n";
  ModelLayout want = layout_model(checkpoint_model(ck.layout()), "fsdp dp=" + std::to_string(ranks));
  start = Clock::now();
  CheckpointReadPlanner planner(ck.layout(), want);
  planner.plan(0);  // builds every tensor's chunk index once
  std::cout << "planner_and_index_seconds " << seconds_since(start) << "\n";
  for (index_t rank : {index_t{0}, ranks / 2, ranks - 1}) {
    double best = 1e9;
    std::size_t reads = 0;
    for (int rep = 0; rep < 5; ++rep) {
      start = Clock::now();
      RankReadPlan plan = planner.plan(rank);
      best = std::min(best, seconds_since(start));
      reads = plan.reads.size();
    }
    std::cout << "rank_plan_ms rank=" << rank << " " << best * 1e3 << " (" << reads << " reads)\n";
  }
  return 0;
}

int write(const std::string& folder, std::uint64_t mib, std::size_t files) {
  std::filesystem::create_directories(folder);
  std::uint64_t per_file = (mib << 20) / files;
  std::vector<char> block(1 << 20);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131 % 251);
  for (std::size_t f = 0; f < files; ++f) {
    // Tensors of 4096-wide bf16 rows, 8 per file.
    std::vector<SafetensorsItem> items;
    index_t rows = static_cast<index_t>(per_file / 8 / (4096 * 2));
    for (int t = 0; t < 8; ++t) items.push_back(SafetensorsItem{"layer" + std::to_string(f) + ".w" + std::to_string(t), DType::bf16, Dims{rows, 4096}});
    std::ofstream out(std::filesystem::path(folder) / ("part" + std::to_string(f) + ".safetensors"), std::ios::binary);
    out << safetensors_header_bytes(items);
    std::uint64_t bytes = static_cast<std::uint64_t>(rows) * 4096 * 2 * 8;
    for (std::uint64_t done = 0; done < bytes; done += block.size()) out.write(block.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(block.size(), bytes - done)));
  }
  return 0;
}

// Drops `folder`'s checkpoint files from the page cache (written back first: the kernel lets
// only clean pages go) and returns how many of their bytes are still cached, counted with mincore.
std::uint64_t evict(const std::string& folder, const CheckpointLayout& layout) {
  std::uint64_t cached = 0;
  for (const std::string& name : layout.files) {
    std::string path = (std::filesystem::path(folder) / name).string();
    InputFile file(path);
    int fd = ::open(path.c_str(), O_RDONLY);
    bool dropped = fd >= 0 && ::fdatasync(fd) == 0 && ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
    if (fd >= 0) ::close(fd);
    if (!dropped) throw Error("cannot drop " + path + " from the page cache");
    MappedFile mapped(file, path);
    std::string_view bytes = mapped.view();
    std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> resident((bytes.size() + page - 1) / page);
    if (!bytes.empty() && ::mincore(const_cast<char*>(bytes.data()), bytes.size(), resident.data()) == 0)
      for (unsigned char r : resident) cached += (r & 1) * page;
  }
  return cached;
}

int load(const std::string& folder, index_t ranks, bool cold) {
  Checkpoint ck = Checkpoint::open(folder);
  ModelLayout want = layout_model(checkpoint_model(ck.layout()), "fsdp dp=" + std::to_string(ranks));
  CheckpointReadPlanner planner(ck.layout(), want);
  RankReadPlan plan = planner.plan(1, false);
  std::vector<std::vector<std::byte>> storage;
  std::vector<std::span<std::byte>> buffers;
  for (std::uint64_t s : rank_buffer_bytes(planner, 1)) storage.emplace_back(s);
  for (auto& s : storage) buffers.emplace_back(s);
  std::uint64_t bytes = 0;
  for (auto& s : storage) bytes += s.size();
  // The same byte ranges (the reads' chunk rows), read sequentially per file.
  std::vector<std::tuple<std::uint32_t, std::uint64_t, std::uint64_t>> ranges;
  for (const CheckpointRead& r : plan.reads) {
    const StoredTensor& t = ck.layout().tensors[r.tensor];
    std::uint64_t row = static_cast<std::uint64_t>(volume(t.shape) / std::max<index_t>(1, t.shape[0]) * element_bytes(t.dtype));
    ranges.emplace_back(t.chunks[r.chunk].file, ck.data(r.tensor, r.chunk).byte_offset + static_cast<std::uint64_t>(r.storage_offsets[0]) * row,
                        static_cast<std::uint64_t>(r.lengths[0]) * row);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::byte> block(16 << 20);
  auto sequential = [&] {
    for (auto [file, offset, length] : ranges)
      for (std::uint64_t done = 0; done < length; done += block.size()) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), length - done));
        ck.file(file).read(offset + done, std::span(block.data(), n));
      }
  };
  if (!cold) sequential();  // warm the page cache
  double best_sequential = 1e9, best_load = 1e9;
  std::uint64_t cached_before_reads = 0;
  for (int rep = 0; rep < 5; ++rep) {
    if (cold) cached_before_reads = std::max(cached_before_reads, evict(folder, ck.layout()));
    auto start = Clock::now();
    sequential();
    best_sequential = std::min(best_sequential, seconds_since(start));
    if (cold) cached_before_reads = std::max(cached_before_reads, evict(folder, ck.layout()));
    start = Clock::now();
    load_reads(ck, planner, plan, buffers, LoadOptions{4, 256 << 20});
    best_load = std::min(best_load, seconds_since(start));
  }
  if (cold) std::cout << "page_cache cold (at most " << cached_before_reads << " bytes of the files still cached before a read)\n";
  std::cout << "bytes " << bytes << "\nsequential_gbps " << static_cast<double>(bytes) / best_sequential / 1e9 << "\nload_gbps "
            << static_cast<double>(bytes) / best_load / 1e9 << "\nratio " << best_sequential / best_load << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "metadata" && argc == 4) return metadata(argv[2], std::stoll(argv[3]));
    if (mode == "load" && (argc == 4 || (argc == 5 && std::string(argv[4]) == "cold"))) return load(argv[2], std::stoll(argv[3]), argc == 5);
    if (mode == "write" && argc == 5) return write(argv[2], std::stoull(argv[3]), std::stoull(argv[4]));
    std::cerr << "usage: checkpoint_bench metadata FOLDER RANKS | load FOLDER RANKS [cold] | write FOLDER MIB FILES\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
