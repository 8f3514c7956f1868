#include "../test_support.hpp"

using namespace shardalg;

// SEMANTICS.md section 1: (size, offset) for r = 0..k-1.
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
