#include "../test_support.hpp"

using namespace shardalg;

namespace {
constexpr PickleGlobal size_only[] = {{"torch", "Size"}};
std::string_view as_text(const std::string& s) { return s; }
// The bytes of a literal, embedded NULs included.
template <std::size_t N>
std::string literal(const char (&text)[N]) { return std::string(text, N - 1); }
}  // namespace

TEST_CASE("pickle.dumps(torch.Size([5, 3]), protocol 4) reads as an inert Size record") {
  std::string bytes = literal("\x80\x04\x8c\x05torch\x94\x8c\x04Size\x94\x93\x94K\x05K\x03\x86\x94\x85\x94R\x94.");
  PickleDocument doc(as_text(bytes), size_only, "size.pkl");
  CHECK(doc.is_object_of(doc.root(), "Size"));
  auto args = doc.object(doc.root()).args;
  auto extents = doc.item(args, 0);
  CHECK(doc.size(extents) == 2);
  CHECK(doc.integer(doc.item(extents, 0)) == 5);
  CHECK(doc.integer(doc.item(extents, 1)) == 3);
}

TEST_CASE("every kind of value reads back, whether it is held in its ref or in a node") {
  // pickle.dumps((0, 2**31 - 1, 2**31, -1, None, True, False, (), ((),), [1, 2], {"a": 3}, torch.Size([7])), protocol=4)
  std::string bytes = literal(
      "\x80\x04\x95\x48\x00\x00\x00\x00\x00\x00\x00\x28\x4b\x00\x4a\xff\xff\xff\x7f\x8a\x05\x00\x00\x00\x80\x00\x4a\xff\xff"
      "\xff\xff\x4e\x88\x89\x29\x29\x85\x94\x5d\x94\x28\x4b\x01\x4b\x02\x65\x7d\x94\x8c\x01\x61\x94\x4b\x03\x73\x8c\x05\x74"
      "\x6f\x72\x63\x68\x94\x8c\x04\x53\x69\x7a\x65\x94\x93\x94\x4b\x07\x85\x94\x85\x94\x52\x94\x74\x94\x2e");
  PickleDocument doc(as_text(bytes), size_only, "kinds.pkl");
  using Kind = PickleDocument::Kind;
  auto root = doc.root();
  REQUIRE(doc.size(root) == 12);
  auto at = [&](std::size_t i) { return doc.item(root, i); };
  CHECK(doc.integer(at(0)) == 0);
  CHECK(doc.integer(at(1)) == 2147483647);
  CHECK(doc.integer(at(2)) == 2147483648);
  CHECK(doc.integer(at(3)) == -1);
  CHECK(doc.is(at(4), Kind::none));
  CHECK((doc.boolean(at(5)) && !doc.boolean(at(6))));
  CHECK((doc.is(at(7), Kind::tuple) && doc.size(at(7)) == 0));
  CHECK((doc.size(at(8)) == 1 && doc.size(doc.item(at(8), 0)) == 0));
  std::vector<std::int64_t> list;
  doc.for_each(at(9), [&](PickleDocument::Ref r) { list.push_back(doc.integer(r)); });
  CHECK(list == std::vector<std::int64_t>{1, 2});
  REQUIRE(doc.find(at(10), "a"));
  CHECK(doc.integer(*doc.find(at(10), "a")) == 3);
  CHECK_FALSE(doc.find(at(10), "b"));
  CHECK(doc.is_object_of(at(11), "Size"));
  CHECK(doc.is(doc.object(at(11)).state, Kind::none));
  CHECK(doc.integer(doc.item(doc.item(doc.object(at(11)).args, 0), 0)) == 7);
  CHECK_THROWS_WITH_AS(doc.string(at(0)), doctest::Contains("expected a string, found int"), FormatError);
  CHECK_THROWS_WITH_AS(doc.item(at(7), 0), doctest::Contains("a tuple of 0 items has no item 0"), FormatError);
}

TEST_CASE("a pickle naming os.system is refused by name, before anything is built") {
  std::string bytes = literal("\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.");
  CHECK_THROWS_WITH_AS(PickleDocument(as_text(bytes), size_only, "evil.pkl"), doctest::Contains("refused pickle class 'posix.system'"), FormatError);
  std::string text_global("cos\nsystem\n(S'touch x'\ntR.");
  CHECK_THROWS_WITH_AS(PickleDocument(as_text(text_global), size_only, "evil.pkl"), doctest::Contains("refused pickle class 'os.system'"), FormatError);
}

TEST_CASE("malformed pickles: truncation, underflow, memo misuse, oversized integers, out-of-band buffers") {
  auto fails_with = [](std::string bytes, const char* message) {
    CHECK_THROWS_WITH_AS(PickleDocument(as_text(bytes), size_only, "bad.pkl"), doctest::Contains(message), FormatError);
  };
  fails_with(literal("\x80\x04\x8c\x10short"), "truncated pickle");
  fails_with("R.", "stack underflow");
  fails_with(literal("h\x05."), "memo entry 5 is read before it is written");
  fails_with(literal("\x8a\x09" "123456789."), "an integer of 9 bytes");
  fails_with(literal("\x97."), "out-of-band buffers");
  fails_with("K\x01K\x02.", "ends with 2 values");
  fails_with(std::string(1, '\xff'), "unsupported pickle opcode 0xff");
}

TEST_CASE("integers of every encoding, and nesting a hundred thousand deep costs no stack") {
  std::string ints = literal("(K\x07M\x01\x02J\xff\xff\xff\xff\x8a\x01\xff\x8a\x00I42\nL-5L\n\x88t.");
  PickleDocument doc(as_text(ints), size_only, "ints.pkl");
  std::vector<std::int64_t> values;
  doc.for_each(doc.root(), [&](PickleDocument::Ref r) { values.push_back(doc.integer(r)); });
  CHECK(values == std::vector<std::int64_t>{7, 0x0201, -1, -1, 0, 42, -5, 1});
  std::string nested = std::string(100000, ']') + std::string(99999, 'a') + ".";
  PickleDocument deep(as_text(nested), size_only, "deep.pkl");
  CHECK(deep.size(deep.root()) == 1);
}

TEST_CASE("a list of a million items grows the reader's arrays past their reserve, values intact") {
  // MARK, then K (i % 256) for i < 1,000,000, LIST, STOP: the stack and the item pool each grow
  // far past this small input's up-front reserve.
  std::string bytes = "(";
  for (int i = 0; i < 1000000; ++i) bytes += literal("K") + static_cast<char>(i % 256);
  bytes += "l.";
  PickleDocument doc(as_text(bytes), size_only, "long.pkl");
  REQUIRE(doc.size(doc.root()) == 1000000);
  std::int64_t i = 0, mismatches = 0;
  doc.for_each(doc.root(), [&](PickleDocument::Ref r) { mismatches += doc.integer(r) != i++ % 256; });
  CHECK(mismatches == 0);
}

TEST_CASE("an input large enough to be populated in the background parses intact while its arrays outgrow their reserve") {
  // 3.5 million pairs (K a K b TUPLE2) in a list: 17.5 MB, past the size from which the reader's
  // pages are mapped on another thread; the nodes and the pool grow past their reserve meanwhile.
  constexpr int pairs = 3500000;
  std::string bytes = "(";
  bytes.reserve(5 * pairs + 3);
  for (int i = 0; i < pairs; ++i) bytes += literal("K") + static_cast<char>(i % 256) + "K" + static_cast<char>(i / 256 % 256) + literal("\x86");
  bytes += "l.";
  PickleDocument doc(as_text(bytes), size_only, "pairs.pkl");
  REQUIRE(doc.size(doc.root()) == pairs);
  std::int64_t i = 0, mismatches = 0;
  doc.for_each(doc.root(), [&](PickleDocument::Ref pair) {
    mismatches += doc.integer(doc.item(pair, 0)) != i % 256 || doc.integer(doc.item(pair, 1)) != i / 256 % 256;
    ++i;
  });
  CHECK(mismatches == 0);
}
