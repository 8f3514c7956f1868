#include "../test_support.hpp"

#include "shardalg/core/work_share.hpp"

using namespace shardalg;

TEST_CASE("owners_by_size: largest first, each to the least loaded process, lowest on ties") {
  std::vector<std::uint64_t> sizes{5, 4, 3, 3};
  CHECK(owners_by_size(sizes, 2) == std::vector<index_t>{0, 1, 1, 0});
  CHECK(owners_by_size(sizes, 1) == std::vector<index_t>{0, 0, 0, 0});
  CHECK(owners_by_size(sizes, 8) == std::vector<index_t>{0, 1, 2, 3});  // more processes than items: the first ones
  CHECK(owners_by_size(std::vector<std::uint64_t>{}, 3).empty());
  CHECK(owners_by_size(sizes, max_ranks).size() == 4);  // nothing allocated for idle processes
}

TEST_CASE("owners_by_size and check_share: bad shares are named") {
  std::vector<std::uint64_t> sizes{1};
  SHARDALG_CHECK_THROWS_CONTAINING(owners_by_size(sizes, 0), Error, "process 0 of 0: a share needs 0 <= process < processes");
  SHARDALG_CHECK_THROWS_CONTAINING(owners_by_size(sizes, max_ranks + 1), Error, "of 16777217");
  SHARDALG_CHECK_THROWS_CONTAINING(check_share(ProcessShare{3, 3}), Error, "process 3 of 3");
  SHARDALG_CHECK_THROWS_CONTAINING(check_share(ProcessShare{-1, 2}), Error, "process -1 of 2");
  CHECK(ProcessShare{}.leader());
  CHECK(!ProcessShare{1, 2}.leader());
}
