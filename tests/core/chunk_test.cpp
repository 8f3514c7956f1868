#include "../test_support.hpp"

#include <limits>

using namespace shardalg;

// docs/semantics.md section 1: (size, offset) for r = 0..k-1.
TEST_CASE("torch.chunk splits match the reference table") {
  struct Case {
    index_t n, k;
    std::vector<Chunk> expected;  // (offset, size)
  };
  std::vector<Case> cases = {
      {10, 4, {{0, 3}, {3, 3}, {6, 3}, {9, 1}}},
      {6, 4, {{0, 2}, {2, 2}, {4, 2}, {6, 0}}},
      {5, 4, {{0, 2}, {2, 2}, {4, 1}, {5, 0}}},
      {2, 4, {{0, 1}, {1, 1}, {2, 0}, {2, 0}}},
      {0, 4, {{0, 0}, {0, 0}, {0, 0}, {0, 0}}},
  };
  for (const Case& c : cases)
    for (index_t r = 0; r < c.k; ++r) {
      INFO("n=" << c.n << " k=" << c.k << " r=" << r);
      CHECK(chunk_of(c.n, c.k, r) == c.expected[static_cast<std::size_t>(r)]);
    }
  static_assert(chunk_of(6, 4, 3) == Chunk{6, 0});
}

TEST_CASE("chunk_holding inverts chunk_of on held positions") {
  for (index_t n : {1, 5, 6, 10, 17})
    for (index_t k : {1, 2, 3, 4, 7})
      for (index_t p = 0; p < n; ++p) {
        Chunk c = chunk_of(n, k, chunk_holding(n, k, p));
        CHECK(c.offset <= p);
        CHECK(p < c.offset + c.size);
      }
}

TEST_CASE("chunk_of does not overflow for lengths near the index type's maximum") {
  constexpr index_t max = std::numeric_limits<index_t>::max();
  for (index_t n : {max, max - 1})
    for (index_t k : {2, 3, 7}) {
      INFO("n=" << n << " k=" << k);
      index_t next = 0;  // the chunks tile [0, n) in order
      for (index_t r = 0; r < k; ++r) {
        Chunk c = chunk_of(n, k, r);
        CHECK(c.offset == next);
        CHECK(c.size <= n - c.offset);
        next = c.offset + c.size;
      }
      CHECK(next == n);
    }
  // Many chunks: trailing chunks are empty at offset n, the last non-empty one ends at n.
  index_t n = max - 1, k = 4'000'000'000;
  index_t full = ceil_div(n, k);
  index_t last_full = ceil_div(n, full) - 1;
  Chunk last = chunk_of(n, k, last_full);
  CHECK(last.offset + last.size == n);
  CHECK(chunk_of(n, k, last_full + 1) == Chunk{n, 0});
  CHECK(chunk_of(n, k, k - 1) == Chunk{n, 0});
}
