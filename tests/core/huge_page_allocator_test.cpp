#include "../test_support.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

#include "shardalg/core/huge_page_allocator.hpp"

using namespace shardalg;

namespace {
// The VmFlags line of the mapping of this process that starts at `address` (Linux: /proc/self/smaps).
std::string mapping_flags(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  std::ostringstream start;
  start << std::hex << reinterpret_cast<std::uintptr_t>(address) << "-";
  bool in_mapping = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.find('-') != std::string::npos && line.find(' ') > line.find('-') && std::isxdigit(static_cast<unsigned char>(line[0])))
      in_mapping = line.rfind(start.str(), 0) == 0;
    if (in_mapping && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}
}  // namespace

TEST_CASE("HugePageAllocator: small blocks from operator new, large ones on huge-page boundaries, contents kept") {
  HugePageAllocator<std::uint32_t> allocator;
  std::uint32_t* small = allocator.allocate(1000);
  for (std::uint32_t i = 0; i < 1000; ++i) small[i] = i;
  CHECK(small[999] == 999);
  allocator.deallocate(small, 1000);

  std::size_t n = huge_page_bytes / sizeof(std::uint32_t) + 1;  // just over one huge page: two are mapped
  std::uint32_t* large = allocator.allocate(n);
  CHECK(reinterpret_cast<std::uintptr_t>(large) % huge_page_bytes == 0);
  CHECK(large[0] == 0);  // fresh anonymous memory
  large[n - 1] = 7;
  CHECK(large[n - 1] == 7);
#if defined(MADV_HUGEPAGE)
  CHECK(mapping_flags(large).find(" hg") != std::string::npos);  // madvise(MADV_HUGEPAGE) took
#endif
  allocator.deallocate(large, n);
}

TEST_CASE("HugePageAllocator: a vector grows across the threshold with its items, and impossible sizes throw") {
  std::vector<std::uint64_t, HugePageAllocator<std::uint64_t>> values;
  for (std::uint64_t i = 0; i < 3 * huge_page_bytes / sizeof(std::uint64_t); ++i) values.push_back(i * 3);
  std::uint64_t mismatches = 0;
  for (std::uint64_t i = 0; i < values.size(); ++i) mismatches += values[i] != i * 3;
  CHECK(mismatches == 0);
  CHECK_THROWS_AS(HugePageAllocator<std::uint64_t>().allocate(HugePageAllocator<std::uint64_t>::max_size() + 1), std::bad_array_new_length);
}

#if defined(MADV_POPULATE_WRITE)
TEST_CASE("populate_for_writing: the whole pages of a range are resident at once, its partial end pages untouched") {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  constexpr std::size_t pages = 16;
  void* block = ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(block != MAP_FAILED);
  auto resident = [&] {
    std::vector<unsigned char> in_core(pages);
    REQUIRE(::mincore(block, pages * page, in_core.data()) == 0);
    std::vector<int> out;
    for (unsigned char c : in_core) out.push_back(c & 1);
    return out;
  };
  CHECK(resident() == std::vector<int>(pages, 0));
  // From the middle of page 1 to the middle of page 14: pages 2 to 13 are whole.
  if (populate_for_writing(static_cast<char*>(block) + page + page / 2, 13 * page)) {
    std::vector<int> expected(pages, 0);
    for (std::size_t p = 2; p < 14; ++p) expected[p] = 1;
    CHECK(resident() == expected);
  } else {
    MESSAGE("this kernel refuses MADV_POPULATE_WRITE (older than Linux 5.14): nothing to check");
  }
  ::munmap(block, pages * page);
}
#endif
