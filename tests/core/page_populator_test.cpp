#include "../test_support.hpp"

#include <chrono>
#include <thread>

#include "shardalg/core/page_populator.hpp"
#include "shardalg/storage/pickle_reader.hpp"

using namespace shardalg;

#if defined(MADV_POPULATE_WRITE)
namespace {
// How many of the `pages` pages from `block` are resident.
std::size_t resident_pages(void* block, std::size_t pages) {
  const std::size_t page = page_bytes();
  std::vector<unsigned char> in_core(pages);
  REQUIRE(::mincore(block, pages * page, in_core.data()) == 0);
  std::size_t n = 0;
  for (unsigned char c : in_core) n += c & 1;
  return n;
}
}  // namespace

TEST_CASE("populate_for_writing: the whole pages of a range are resident at once, its partial end pages untouched") {
  const std::size_t page = page_bytes();
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

TEST_CASE("populate_for_reading maps a read-only mapping, which populate_for_writing refuses") {
  const std::size_t page = page_bytes();
  void* block = ::mmap(nullptr, 8 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(block != MAP_FAILED);
  if (populate_for_reading(block, 8 * page)) {
    CHECK_FALSE(populate_for_writing(block, 8 * page));
    CHECK(static_cast<const char*>(block)[5 * page] == 0);
  } else {
    MESSAGE("this kernel refuses MADV_POPULATE_READ (older than Linux 5.14): nothing to check");
  }
  ::munmap(block, 8 * page);
}

TEST_CASE("PagePopulator: every page of every range becomes resident, and nothing past the ranges") {
  const std::size_t page = page_bytes();
  constexpr std::size_t pages = 64;
  void* block = ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(block != MAP_FAILED);
  char* bytes = static_cast<char*>(block);
  if (!populate_for_writing(bytes, page)) {
    MESSAGE("this kernel refuses MADV_POPULATE_WRITE (older than Linux 5.14): nothing to check");
  } else {
    // Pages 0 (already resident), 1-20 and 40-49, in steps of 3 pages: the tails are partial steps.
    PagePopulator populator;
    populator.start({{bytes + page, 20 * page}, {bytes + 40 * page, 10 * page}}, 3 * page);
    CHECK(populator.running());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (resident_pages(block, pages) < 31 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    populator.stop();
    CHECK_FALSE(populator.running());
    CHECK(resident_pages(block, 21) == 21);
    CHECK(resident_pages(bytes + 21 * page, 19) == 0);
    CHECK(resident_pages(bytes + 40 * page, 10) == 10);
    CHECK(resident_pages(bytes + 50 * page, 14) == 0);
    CHECK(bytes[page] == 0);  // populated pages read as fresh memory
  }
  ::munmap(block, pages * page);
}

TEST_CASE("PagePopulator: stop ends the populating early, and is idempotent") {
  // 1 GiB of address space: stopped after 5 ms, far from all of it may be resident.
  constexpr std::size_t bytes = std::size_t{1} << 30;
  void* block = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(block != MAP_FAILED);
  PagePopulator populator;
  populator.start({{block, bytes}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  populator.stop();
  populator.stop();
  CHECK_FALSE(populator.running());
  const std::size_t page = page_bytes();
  CHECK(resident_pages(block, bytes / page) < bytes / page / 2);
  ::munmap(block, bytes);
}

TEST_CASE("PagesAhead: each step maps the next pages past an array's published end, up to its reach and its capacity, changing no data") {
  const std::size_t page = page_bytes();
  constexpr std::size_t pages = 64;
  void* block = ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(block != MAP_FAILED);
  char* bytes = static_cast<char*>(block);
  if (!populate_for_writing(bytes + 40 * page, page)) {
    MESSAGE("this kernel refuses MADV_POPULATE_WRITE (older than Linux 5.14): nothing to check");
  } else {
    bytes[40 * page + 7] = 'x';  // page 40, resident and written already
    PagesAhead ahead(2, 10 * page, 4 * page);
    CHECK_FALSE(ahead.step());  // nothing published
    // Array 0 is filled to the middle of page 3, so pages 4 to 12 are whole within 10 pages past its end.
    ahead.publish(0, bytes, 3 * page + page / 2, 30 * page);
    int steps = 0;
    while (ahead.step()) ++steps;
    CHECK(steps == 3);  // pages 4-6, 7-10, 11-12: each step ends on a page boundary
    CHECK(resident_pages(bytes, 4) == 0);
    CHECK(resident_pages(bytes + 4 * page, 9) == 9);
    CHECK(resident_pages(bytes + 13 * page, 17) == 0);
    // Filled further: the steps go on from there, and stop at its capacity (page 34).
    ahead.publish(0, bytes, 28 * page, 34 * page);
    while (ahead.step()) {
    }
    CHECK(resident_pages(bytes + 13 * page, 15) == 0);
    CHECK(resident_pages(bytes + 28 * page, 6) == 6);
    CHECK(resident_pages(bytes + 34 * page, 6) == 0);
    // Array 1 over pages 38-63 and its written page 40: mapped again, its data kept.
    ahead.publish(1, bytes + 38 * page, 0, 26 * page);
    while (ahead.step()) {
    }
    CHECK(resident_pages(bytes + 38 * page, 10) == 10);
    CHECK(resident_pages(bytes + 48 * page, 16) == 0);
    CHECK(bytes[40 * page + 7] == 'x');
    CHECK(bytes[39 * page] == 0);
    // Moved (published at another place): mapped again from its end there.
    ahead.publish(1, bytes + 50 * page, page, 14 * page);
    CHECK(ahead.step());
    CHECK(resident_pages(bytes + 51 * page, 4) == 4);
  }
  ::munmap(block, pages * page);
}
#endif

TEST_CASE("AppendArray: growing past its capacity stops the populator of its old pages first, and keeps its items") {
  detail::AppendArray<std::uint64_t> values;
  values.reserve(std::size_t{1} << 18);
  PagePopulator populator;
  values.populated_by(&populator);
  populator.start({{values.data(), values.capacity() * sizeof(std::uint64_t)}});
  std::uint64_t n = std::uint64_t{3} << 18;
  for (std::uint64_t i = 0; i < n; ++i) values.push_back(i * 5);
  CHECK_FALSE(populator.running());
  std::uint64_t mismatches = 0;
  for (std::uint64_t i = 0; i < n; ++i) mismatches += values[i] != i * 5;
  CHECK(values.size() == n);
  CHECK(mismatches == 0);
}
