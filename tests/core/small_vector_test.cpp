#include "../test_support.hpp"

using namespace shardalg;

TEST_CASE("SmallVector keeps elements inline, spills past capacity, and copies and moves") {
  SmallVector<int, 2> v{1, 2};
  CHECK(v.size() == 2);
  v.push_back(3);  // spills
  v.push_back(4);
  CHECK(v.size() == 4);
  CHECK(v[3] == 4);
  SmallVector<int, 2> copy = v;
  CHECK(copy == v);
  v.pop_back();
  CHECK(v.size() == 3);
  CHECK(copy.size() == 4);
  SmallVector<int, 2> moved = std::move(copy);
  CHECK(moved.size() == 4);
  CHECK(moved.back() == 4);
  SmallVector<int, 2> small{7};
  moved = small;
  CHECK(moved.size() == 1);
  CHECK(moved[0] == 7);
  moved.clear();
  CHECK(moved.empty());
  CHECK_FALSE(SmallVector<int, 2>{1, 2} == SmallVector<int, 2>{1, 2, 3});
}

TEST_CASE("SmallVector works in constant expressions, spilled or not") {
  constexpr int sum = [] {
    SmallVector<int, 2> v;
    for (int i = 1; i <= 5; ++i) v.push_back(i);
    SmallVector<int, 2> w = v;
    int s = 0;
    for (int x : w) s += x;
    return s;
  }();
  static_assert(sum == 15);
  CHECK(sum == 15);
}

TEST_CASE("SmallVector push_back moves rvalues and accepts its own elements while spilling") {
  using Strings = SmallVector<std::string, 2>;
  std::string long_text(100, 'x');  // beyond the small-string buffer: a move leaves it empty
  Strings v;
  std::string first = long_text;
  v.push_back(std::move(first));
  CHECK(first.empty());
  v.push_back(long_text + "y");
  // The third element spills to the heap; the value pushed is an inline element itself.
  v.push_back(v[0]);
  v.push_back(std::move(v[1]));
  REQUIRE(v.size() == 4);
  CHECK(v[0] == long_text);
  CHECK(v[2] == long_text);
  CHECK(v[3] == long_text + "y");
  Strings w{"a", "b"};
  w.push_back(std::move(w[0]));  // spills while the value is an inline element being moved from
  REQUIRE(w.size() == 3);
  CHECK(w[1] == "b");
  CHECK(w[2] == "a");
}
