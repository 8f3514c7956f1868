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
