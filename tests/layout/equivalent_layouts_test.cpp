#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("EquivalentLayouts: repeated ZeRO-3 layers join the first one's class, shifted") {
  ModelSpec model{"layers",
                  {{"q0", Dims{8, 8}, TensorRole::column_parallel},
                   {"norm", Dims{8}, TensorRole::replicated},
                   {"q1", Dims{8, 8}, TensorRole::column_parallel},
                   {"q2", Dims{8, 6}, TensorRole::column_parallel}}};
  ModelLayout layout = layout_model(model, "zero3 dp=4");
  EquivalentLayouts<std::size_t> classes;
  auto layouts_of = [&](std::size_t t) { return std::array{&layout[t].layout}; };
  std::vector<std::optional<EquivalentLayouts<std::size_t>::Match>> matches;
  for (std::size_t t = 0; t < layout.size(); ++t) {
    matches.push_back(classes.find(layouts_of(t), layouts_of));
    if (!matches.back()) classes.add(layouts_of(t), t);
  }
  CHECK_FALSE(matches[0]);
  CHECK_FALSE(matches[1]);  // another shape
  REQUIRE(matches[2]);
  CHECK(matches[2]->key == 0);
  // q1's window starts after q0's 16 and norm's 2 elements per rank.
  CHECK(matches[2]->shifts[0] == 18);
  CHECK(layout[2].layout.shift_from(layout[0].layout) == 18);
  CHECK_FALSE(matches[3]);  // [8, 6] is no shift of [8, 8]
}

TEST_CASE("EquivalentLayouts of pairs: both layouts must be shifts, each with its own shift") {
  ModelSpec model{"pairs", {{"a", Dims{8, 4}, TensorRole::column_parallel}, {"b", Dims{8, 4}, TensorRole::column_parallel}}};
  ModelLayout zero3 = layout_model(model, "zero3 dp=2"), fsdp = layout_model(model, "fsdp dp=4");
  using Pairs = EquivalentLayouts<std::size_t, 2>;
  Pairs classes;
  auto layouts_of = [&](std::size_t t) { return Pairs::Layouts{&zero3[t].layout, &fsdp[t].layout}; };
  classes.add(layouts_of(0), 0);
  auto match = classes.find(layouts_of(1), layouts_of);
  REQUIRE(match);
  CHECK(match->shifts == Pairs::Shifts{16, 0});  // the ZeRO-3 window moves, the FSDP tile does not
  // A pair whose second layout differs is no match.
  ModelLayout other = layout_model(model, "fsdp dp=2");
  CHECK_FALSE(classes.find(Pairs::Layouts{&zero3[1].layout, &other[1].layout}, layouts_of));
}
