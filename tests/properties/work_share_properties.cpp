// Laws of dividing work among processes.
#include "generators.hpp"

using namespace shardalg;

TEST_CASE("properties of owners_by_size") {
  SHARDALG_PROPERTY("every item has one owner among the processes; loads differ by at most the largest item", [] {
    auto sizes = *rc::gen::container<std::vector<std::uint64_t>>(rc::gen::inRange<std::uint64_t>(0, 1000));
    index_t processes = *rc::gen::inRange<index_t>(1, 12);
    std::vector<index_t> owners = owners_by_size(sizes, processes);
    RC_ASSERT(owners.size() == sizes.size());
    std::vector<std::uint64_t> load(static_cast<std::size_t>(processes), 0);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      RC_ASSERT(owners[i] >= 0 && owners[i] < processes);
      load[static_cast<std::size_t>(owners[i])] += sizes[i];
    }
    std::uint64_t largest = sizes.empty() ? 0 : *std::max_element(sizes.begin(), sizes.end());
    RC_ASSERT(*std::max_element(load.begin(), load.end()) <= *std::min_element(load.begin(), load.end()) + largest);
    RC_ASSERT(owners_by_size(sizes, processes) == owners);  // every process computes the same division
  });
}
