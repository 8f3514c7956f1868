// A restricted pickle reader: pickles are data, never code.
//
// Python's pickle builds objects by calling whatever callable the file names (`os.system`
// included). This reader runs the same stack machine (protocols 2 to 5 and the text opcodes
// torch.save uses) but calls nothing: a callable applied to arguments (REDUCE, NEWOBJ) becomes an
// inert record {callable, args, state} that the format's decoder interprets. Globals are checked
// against the caller's allow list when they are read, so a pickle naming any other class is
// refused with an error naming it before anything else happens.
//
// Memory is proportional to the input: every opcode adds at most a constant number of nodes,
// strings are views into the input (which must outlive the document), and containers keep their
// items in one shared pool. Small non-negative integers, None, the bools and the empty tuple take
// no node: a DCP `.metadata` is mostly these, and first touching the nodes' memory was much of
// the parse's time; for the same reason a large input's arrays have their pages mapped on another
// core while the parse fills them (PagePopulator).
// Nothing is recursive, so nesting depth costs no stack.
//
// Example: pickle.dumps(torch.Size([5, 3])) reads as
//   object{callable: global torch.Size, args: tuple(tuple(5, 3))}.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "shardalg/core/error.hpp"
#include "shardalg/core/page_populator.hpp"
#include "shardalg/storage/byte_source.hpp"

namespace shardalg {

// A global the reader accepts: module and name as the pickle spells them.
struct PickleGlobal {
  std::string_view module;
  std::string_view name;
};

namespace detail {

// A growable array of trivially copyable values whose appends are inlined into the pickle
// reader's opcode loop (std::vector's push_back and insert stayed calls there: a seventh of a
// large parse). Its capacity is only reserved, never written ahead of use (std::vector's resize
// zeroed it). A PagePopulator filling its pages ahead of use is stopped before the array moves.
template <class T>
class AppendArray {
  static_assert(std::is_trivially_copyable_v<T>, "AppendArray moves its items with memcpy: they must be trivially copyable");

 public:
  AppendArray() = default;
  AppendArray(const AppendArray&) = delete;
  AppendArray& operator=(const AppendArray&) = delete;
  ~AppendArray() {
    if (data_) std::allocator<T>().deallocate(data_, capacity_);
  }
  void reserve(std::size_t n) {
    if (n > capacity_) reallocate(n);
  }
  [[gnu::always_inline]] void push_back(const T& v) {
    if (size_ == capacity_) [[unlikely]]
      grow(1);
    data_[size_++] = v;
  }
  [[gnu::always_inline]] void append(const T* first, const T* last) {
    std::size_t n = static_cast<std::size_t>(last - first);
    if (capacity_ - size_ < n) [[unlikely]]
      grow(n);
    for (std::size_t i = 0; i < n; ++i) data_[size_ + i] = first[i];
    size_ += n;
  }
  void pop_back() { --size_; }
  // Shrinks to `n` items (never grows: what a reader pops back to was pushed).
  void resize(std::size_t n) { size_ = std::min(n, size_); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  T* data() { return data_; }
  const T& back() const { return data_[size_ - 1]; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  void populated_by(PagePopulator* populator) { populator_ = populator; }

 private:
  void grow(std::size_t at_least) { reallocate(size_ + std::max({size_, at_least, std::size_t{64}})); }
  void reallocate(std::size_t capacity) {
    if (populator_) populator_->stop();
    std::allocator<T> allocator;
    T* data = allocator.allocate(capacity);
    if (size_ > 0) std::memcpy(static_cast<void*>(data), data_, size_ * sizeof(T));
    if (data_) allocator.deallocate(data_, capacity_);
    data_ = data;
    capacity_ = capacity;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
  PagePopulator* populator_ = nullptr;
};

// Thrown where a pickle's bytes run out (each reader says so its own way).
struct PickleTruncated {
  std::size_t needed;  // bytes wanted, or 0 for an end of line
  std::size_t at;
};

// A pickle's bytes, read in order: the one cursor both pickle readers use.
class PickleInput {
 public:
  explicit PickleInput(std::string_view data) : data_(data) {}
  std::size_t pos() const { return pos_; }
  // Where the next n bytes start; they are then passed. Throws PickleTruncated past the end.
  std::size_t need(std::size_t n) {
    if (n > data_.size() - pos_) throw PickleTruncated{n, pos_};
    std::size_t at = pos_;
    pos_ += n;
    return at;
  }
  template <class T>
  T le() {
    std::size_t at = need(sizeof(T));
    return load_le<T>(reinterpret_cast<const std::byte*>(data_.data() + at));
  }
  // The next n bytes as a little-endian two's complement integer (LONG1's, LONG4's payload).
  // Precondition: n <= 8 (each reader refuses longer ones its own way).
  std::int64_t signed_le(std::size_t n) {
    std::size_t at = need(n);
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | static_cast<std::uint8_t>(data_[at + i]);
    if (n > 0 && n < 8 && (static_cast<std::uint8_t>(data_[at + n - 1]) & 0x80)) v |= ~std::uint64_t{0} << (8 * n);
    return static_cast<std::int64_t>(v);
  }
  std::string_view line() {
    std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) throw PickleTruncated{0, pos_};
    std::string_view text = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return text;
  }
  // Whether the next byte is `c`, passed if so.
  bool take(char c) {
    if (pos_ == data_.size() || data_[pos_] != c) return false;
    ++pos_;
    return true;
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

}  // namespace detail

class PickleDocument {
 public:
  enum class Kind : std::uint8_t { none, boolean, integer, floating, string, bytes, tuple, list, dict, set, global, object, persistent_id };
  using Ref = std::uint32_t;

  // Reads `data` (not copied: keep it alive while using the document). `what` names the input
  // in errors. Errors (FormatError): malformed or truncated input, an opcode that needs code or
  // outside state (extensions, out-of-band buffers), a global not in `allowed`.
  PickleDocument(std::string_view data, std::span<const PickleGlobal> allowed, std::string what) : data_(data), what_(std::move(what)), input_(data) {
    try {
      parse(allowed);
    } catch (const detail::PickleTruncated& t) {
      if (t.needed == 0) detail::fail<FormatError>(what_, ": truncated pickle (no end of line after byte ", t.at, ")");
      detail::fail<FormatError>(what_, ": truncated pickle (", t.needed, " bytes needed at byte ", t.at, " of ", data_.size(), ")");
    }
  }

  Ref root() const { return root_; }
  Kind kind(Ref r) const { return is_small_int(r) ? Kind::integer : nodes_[r].kind; }
  const std::string& what() const { return what_; }

  bool is(Ref r, Kind k) const { return kind(r) == k; }
  std::int64_t integer(Ref r) const {
    if (is_small_int(r)) return static_cast<std::int64_t>(r & ~small_int_bit);
    if (kind(r) != Kind::integer && kind(r) != Kind::boolean) bad(r, "an integer");
    return static_cast<std::int64_t>(nodes_[r].b);
  }
  bool boolean(Ref r) const {
    if (kind(r) != Kind::boolean) bad(r, "a bool");
    return nodes_[r].b != 0;
  }
  std::string_view string(Ref r) const {
    if (kind(r) != Kind::string) bad(r, "a string");
    return data_.substr(static_cast<std::size_t>(nodes_[r].b), nodes_[r].a);
  }
  std::string_view bytes(Ref r) const {
    if (kind(r) != Kind::bytes) bad(r, "bytes");
    return data_.substr(static_cast<std::size_t>(nodes_[r].b), nodes_[r].a);
  }
  // A global's module and name (for kind global).
  const PickleGlobal& global(Ref r) const {
    if (kind(r) != Kind::global) bad(r, "a class");
    return globals_[nodes_[r].a];
  }
  // An object's parts: the callable (a global), its argument tuple, and its BUILD state (None if
  // never built).
  struct Object {
    Ref callable, args, state;
  };
  Object object(Ref r) const {
    if (kind(r) != Kind::object) bad(r, "an object");
    const Node& n = nodes_[r];
    return Object{n.a, static_cast<Ref>(n.b), static_cast<Ref>(n.b >> 32)};
  }
  // Whether `r` is an object made by an allowed global named `name` (the allow list fixes the module).
  // (A literal name: its length is a constant, so the comparison inlines; decoders ask this of every record.)
  template <std::size_t N>
  bool is_object_of(Ref r, const char (&name)[N]) const {
    if (kind(r) != Kind::object) return false;
    std::string_view have = global(nodes_[r].a).name;
    return have.size() == N - 1 && std::memcmp(have.data(), name, N - 1) == 0;
  }
  // The pid of a persistent id.
  Ref persistent_id(Ref r) const {
    if (kind(r) != Kind::persistent_id) bad(r, "a persistent id");
    return nodes_[r].a;
  }

  // Items of a tuple, list or set; keys and values alternate in a dict.
  std::size_t size(Ref r) const {
    Kind k = require_container(r);
    return static_cast<std::size_t>(k == Kind::tuple ? nodes_[r].b : nodes_[r].b >> 32);
  }
  template <class F>
  void for_each(Ref r, F&& f) const {
    if (require_container(r) == Kind::tuple) {
      for (std::uint64_t i = 0; i < nodes_[r].b; ++i) f(pool_[nodes_[r].a + i]);
      return;
    }
    for (std::uint32_t s = nodes_[r].a; s != no_segment; s = segments_[s].next)
      for (std::uint32_t i = 0; i < segments_[s].count; ++i) f(pool_[segments_[s].begin + i]);
  }
  // The i-th item of a tuple (a tuple's items are contiguous). Error when out of range.
  Ref item(Ref r, std::size_t i) const {
    if (kind(r) != Kind::tuple) bad(r, "a tuple");
    if (i >= size(r)) detail::fail<FormatError>(what_, ": a tuple of ", size(r), " items has no item ", i);
    return pool_[nodes_[r].a + i];
  }
  // The values of string keys in a dict, found in one pass: found[i] becomes the value of keys[i]
  // where the dict has it (the last one where it repeats, as Python keeps), else stays as it was.
  // `known`, where given, holds string nodes already found equal to keys[i] (0 where none yet):
  // checked before comparing text and filled in as found (records name their fields by shared,
  // memoized strings, so one cache over a file's records saves nearly every comparison).
  template <std::size_t N>
  void find(Ref dict, const std::array<std::string_view, N>& keys, std::array<std::optional<Ref>, N>& found,
            std::array<Ref, N>* known = nullptr) const {
    if (kind(dict) != Kind::dict) bad(dict, "a dict");
    bool is_key = true;
    std::size_t matched = N;
    for_each(dict, [&](Ref item) {
      if (is_key) {
        matched = N;
        if (kind(item) == Kind::string) {  // node 0 is None: never a known key
          for (std::size_t k = 0; k < N && matched == N; ++k)
            if (known && (*known)[k] == item) matched = k;
          for (std::size_t k = 0; k < N && matched == N; ++k)
            if (nodes_[item].a == keys[k].size() && string(item) == keys[k]) {
              matched = k;
              if (known) (*known)[k] = item;
            }
        }
      } else if (matched < N) {
        found[matched] = item;
      }
      is_key = !is_key;
    });
  }
  // The value of a string key in a dict; none when absent.
  std::optional<Ref> find(Ref dict, std::string_view key) const {
    std::array<std::optional<Ref>, 1> found{};
    find(dict, std::array{key}, found);
    return found[0];
  }

  // How the kind reads in errors.
  static std::string_view kind_name(Kind k) {
    constexpr std::string_view names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict", "set", "class", "object", "persistent id"};
    return names[static_cast<std::size_t>(k)];
  }
  [[noreturn]] void bad(Ref r, std::string_view expected) const {
    std::string got(kind_name(kind(r)));
    if (kind(r) == Kind::object) got += " of " + std::string(global(nodes_[r].a).module) + "." + std::string(global(nodes_[r].a).name);
    detail::fail<FormatError>(what_, ": expected ", expected, ", found ", got);
  }

 private:
  static constexpr std::uint32_t no_segment = 0xffffffffu;
  // Inputs from this size on have their arrays' pages mapped in the background (page_populator.hpp).
  static constexpr std::size_t populate_from_bytes = std::size_t{16} << 20;
  // A ref with this bit set is the integer in its other bits; below it, refs index nodes_.
  static constexpr Ref small_int_bit = 0x80000000u;
  static constexpr Ref none_ref = 0, false_ref = 1, true_ref = 2, empty_tuple_ref = 3;
  struct Node {
    Kind kind;
    std::uint32_t a;  // string/bytes: length; tuple: first pool item; other container: first segment; global: table index; object: callable; pid: value
    std::uint64_t b;  // int/bool/float bits; string/bytes: input offset; tuple: size; other container: (size << 32) | last segment; object: (state << 32) | args
  };
  struct Segment {
    std::uint32_t begin, count, next;
  };

  static bool is_small_int(Ref r) { return (r & small_int_bit) != 0; }
  Kind require_container(Ref r) const {
    Kind k = kind(r);
    if (k != Kind::tuple && k != Kind::list && k != Kind::dict && k != Kind::set) bad(r, "a container");
    return k;
  }

  [[gnu::always_inline]] Ref add(Kind kind, std::uint32_t a, std::uint64_t b) {
    if (nodes_.size() >= small_int_bit) detail::fail<FormatError>(what_, ": more than 2 billion values");
    nodes_.push_back(Node{kind, a, b});
    return static_cast<Ref>(nodes_.size() - 1);
  }
  Ref add_container(Kind kind) { return add(kind, no_segment, no_segment); }
  // Pool positions are 32-bit: refuses a pickle whose containers would hold more items.
  void check_pool_room(std::size_t count) const {
    if (pool_.size() + count >= 0xfffffff0u) detail::fail<FormatError>(what_, ": more than 4 billion items");
  }
  // Appends stack items [from, end) to a list, dict or set.
  void extend(Ref container, std::size_t from) {
    std::uint32_t count = static_cast<std::uint32_t>(stack_.size() - from);
    Node& n = nodes_[container];
    if (count > 0) {
      check_pool_room(count);
      segments_.push_back(Segment{static_cast<std::uint32_t>(pool_.size()), count, no_segment});
      pool_.append(stack_.begin() + from, stack_.end());
      std::uint32_t s = static_cast<std::uint32_t>(segments_.size() - 1), last = static_cast<std::uint32_t>(n.b & 0xffffffffu);
      if (n.a == no_segment)
        n.a = s;
      else
        segments_[last].next = s;
      n.b = ((n.b >> 32) + count) << 32 | s;
    }
    stack_.resize(from);
  }

  // --- input ---
  Ref add_text(Kind kind, std::size_t length) {
    if (length > 0xffffffffu) detail::fail<FormatError>(what_, ": a string of ", length, " bytes (at most 4 GiB)");
    std::size_t at = input_.need(length);
    return add(kind, static_cast<std::uint32_t>(length), at);
  }

  // --- stack ---
  Ref pop() {
    if (stack_.size() <= mark_floor()) detail::fail<FormatError>(what_, ": pickle stack underflow at byte ", input_.pos());
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  Ref top() const {
    if (stack_.size() <= mark_floor()) detail::fail<FormatError>(what_, ": pickle stack underflow at byte ", input_.pos());
    return stack_.back();
  }
  std::size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::size_t pop_mark() {
    if (marks_.empty()) detail::fail<FormatError>(what_, ": pickle MARK missing at byte ", input_.pos());
    std::size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  // A tuple of stack items [from, end), which leave the stack.
  Ref tuple_from(std::size_t from) {
    std::size_t count = stack_.size() - from;
    if (count == 0) return empty_tuple_ref;
    check_pool_room(count);
    Ref t = add(Kind::tuple, static_cast<std::uint32_t>(pool_.size()), count);
    pool_.append(stack_.begin() + from, stack_.end());
    stack_.resize(from);
    return t;
  }

  // --- memo (pickles number memo entries in order; sparse ids go to a map) ---
  void memo_put(std::uint64_t id, Ref r) {
    if (id < memo_.size())
      memo_[id] = r;
    else if (id == memo_.size())
      memo_.push_back(r);
    else
      sparse_memo_[id] = r;
  }
  Ref memo_get(std::uint64_t id) {
    if (id < memo_.size()) return memo_[id];
    auto it = sparse_memo_.find(id);
    if (it == sparse_memo_.end()) detail::fail<FormatError>(what_, ": pickle memo entry ", id, " is read before it is written");
    return it->second;
  }

  Ref add_global(std::string_view module, std::string_view name, std::span<const PickleGlobal> allowed) {
    for (const PickleGlobal& g : allowed)
      if (g.module == module && g.name == name) {
        globals_.push_back(PickleGlobal{module, name});
        return add(Kind::global, static_cast<std::uint32_t>(globals_.size() - 1), 0);
      }
    detail::fail<FormatError>(what_, ": refused pickle class '", module, ".", name, "': this file may only name the record types of its format (nothing in it is ever executed)");
  }
  Ref add_object(Ref callable, Ref args) {
    if (kind(callable) != Kind::global) bad(callable, "a class to call");
    return add(Kind::object, callable, std::uint64_t{none_ref} << 32 | args);
  }
  std::int64_t decimal(std::string_view text) {
    if (!text.empty() && text.back() == 'L') text.remove_suffix(1);
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
      detail::fail<FormatError>(what_, ": integer '", text, "' is malformed or outside 64 bits");
    return value;
  }
  Ref add_int(std::int64_t v) {
    return v >= 0 && v < std::int64_t{small_int_bit} ? static_cast<Ref>(v) | small_int_bit : add(Kind::integer, 0, static_cast<std::uint64_t>(v));
  }
  Ref add_long(std::size_t n) {  // little-endian two's complement of n bytes
    if (n > 8) detail::fail<FormatError>(what_, ": an integer of ", n, " bytes (at most 8)");
    return add_int(input_.signed_le(n));
  }

  void parse(std::span<const PickleGlobal> allowed) {
    // Capacity up front, enough for a DCP metadata file (per input byte about 0.1 nodes and memo
    // entries, 0.16 pool items and 0.02 segments): growing by doubling copied and re-touched these
    // arrays, a third of the time on a 200 MB file. Capacity costs nothing until written.
    nodes_.reserve(data_.size() / 8 + 16);
    memo_.reserve(data_.size() / 6 + 16);
    pool_.reserve(data_.size() / 5 + 16);
    segments_.reserve(data_.size() / 32 + 16);
    // A large input (a mapped file's pages) and its arrays have their pages mapped on another core
    // while this one parses, the arrays up to what a DCP metadata file of the input's size fills.
    if (data_.size() >= populate_from_bytes) {
      auto expected = [&](auto& array, std::size_t items) {
        array.populated_by(&populator_);
        return PagePopulator::Range{array.data(), std::min(items, array.capacity()) * sizeof(array[0])};
      };
      populator_.start({{data_.data(), data_.size(), true}, expected(nodes_, data_.size() / 10), expected(memo_, data_.size() / 10),
                        expected(pool_, data_.size() / 6), expected(segments_, data_.size() / 56)});
    }
    add(Kind::none, 0, 0);
    add(Kind::boolean, 0, 0);
    add(Kind::boolean, 0, 1);
    add(Kind::tuple, 0, 0);
    while (true) {
      std::uint8_t op = static_cast<std::uint8_t>(data_[input_.need(1)]);
      switch (op) {
        case 0x80: input_.need(1); break;                           // PROTO
        case 0x95: input_.need(8); break;                           // FRAME (length only: frames need no buffering here)
        case '(': marks_.push_back(stack_.size()); break;    // MARK
        case '.': {                                          // STOP
          if (stack_.size() != 1 || !marks_.empty()) detail::fail<FormatError>(what_, ": pickle ends with ", stack_.size(), " values on its stack");
          root_ = stack_.back();
          populator_.stop();
          return;
        }
        case '0': pop(); break;                              // POP
        case '1': stack_.resize(pop_mark()); break;          // POP_MARK
        case '2': stack_.push_back(top()); break;            // DUP
        case 'N': stack_.push_back(none_ref); break;
        case 0x88: stack_.push_back(true_ref); break;       // NEWTRUE
        case 0x89: stack_.push_back(false_ref); break;      // NEWFALSE
        case 'I': {                                          // INT (text; 00/01 are False/True)
          std::string_view t = input_.line();
          stack_.push_back(t == "00" ? false_ref : t == "01" ? true_ref : add_int(decimal(t)));
          break;
        }
        case 'L': stack_.push_back(add_int(decimal(input_.line()))); break;   // LONG (text)
        case 'J': stack_.push_back(add_int(input_.le<std::int32_t>())); break;  // BININT
        case 'K': stack_.push_back(add_int(input_.le<std::uint8_t>())); break;  // BININT1
        case 'M': stack_.push_back(add_int(input_.le<std::uint16_t>())); break;  // BININT2
        case 0x8a: stack_.push_back(add_long(input_.le<std::uint8_t>())); break;  // LONG1
        case 0x8b: {                                                      // LONG4
          std::int32_t n = input_.le<std::int32_t>();
          if (n < 0) detail::fail<FormatError>(what_, ": negative integer length ", n);
          stack_.push_back(add_long(static_cast<std::size_t>(n)));
          break;
        }
        case 'G': {                                          // BINFLOAT (big-endian)
          std::size_t at = input_.need(8);
          std::uint64_t bits = 0;
          for (std::size_t i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<std::uint8_t>(data_[at + i]);
          stack_.push_back(add(Kind::floating, 0, bits));
          break;
        }
        case 'F': {                                          // FLOAT (text)
          std::string_view t = input_.line();
          double v = 0;
          auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
          if (ec != std::errc{} || end != t.data() + t.size()) detail::fail<FormatError>(what_, ": float '", t, "' is malformed");
          stack_.push_back(add(Kind::floating, 0, std::bit_cast<std::uint64_t>(v)));
          break;
        }
        case 0x8c: stack_.push_back(add_text(Kind::string, input_.le<std::uint8_t>())); break;   // SHORT_BINUNICODE
        case 'X': stack_.push_back(add_text(Kind::string, input_.le<std::uint32_t>())); break;   // BINUNICODE
        case 0x8d: stack_.push_back(add_text(Kind::string, input_.le<std::uint64_t>())); break;  // BINUNICODE8
        case 'U': stack_.push_back(add_text(Kind::bytes, input_.le<std::uint8_t>())); break;     // SHORT_BINSTRING
        case 'T': stack_.push_back(add_text(Kind::bytes, input_.le<std::uint32_t>())); break;    // BINSTRING
        case 'C': stack_.push_back(add_text(Kind::bytes, input_.le<std::uint8_t>())); break;     // SHORT_BINBYTES
        case 'B': stack_.push_back(add_text(Kind::bytes, input_.le<std::uint32_t>())); break;    // BINBYTES
        case 0x8e: case 0x96: stack_.push_back(add_text(Kind::bytes, input_.le<std::uint64_t>())); break;  // BINBYTES8, BYTEARRAY8
        case ')': stack_.push_back(empty_tuple_ref); break;  // EMPTY_TUPLE
        case ']': stack_.push_back(add_container(Kind::list)); break;   // EMPTY_LIST
        case '}': stack_.push_back(add_container(Kind::dict)); break;   // EMPTY_DICT
        case 0x8f: stack_.push_back(add_container(Kind::set)); break;   // EMPTY_SET
        case 't': { std::size_t m = pop_mark(); stack_.push_back(tuple_from(m)); break; }  // TUPLE
        case 0x85: case 0x86: case 0x87: {                   // TUPLE1..3
          std::size_t n = op - 0x84u;
          if (stack_.size() < mark_floor() + n) detail::fail<FormatError>(what_, ": pickle stack underflow at byte ", input_.pos());
          stack_.push_back(tuple_from(stack_.size() - n));
          break;
        }
        case 'l': case 'd': case 0x91: {                     // LIST, DICT, FROZENSET (from a mark)
          std::size_t m = pop_mark();
          Ref c = add_container(op == 'l' ? Kind::list : op == 'd' ? Kind::dict : Kind::set);
          if (op == 'd' && (stack_.size() - m) % 2) detail::fail<FormatError>(what_, ": DICT with an odd number of items");
          extend(c, m);
          stack_.push_back(c);
          break;
        }
        case 'a': { Ref v = pop(); append_to(top(), Kind::list, v); break; }  // APPEND
        case 'e': case 0x90: {                               // APPENDS, ADDITEMS
          std::size_t m = pop_mark();
          if (m == 0 || m > stack_.size()) detail::fail<FormatError>(what_, ": APPENDS without a container");
          Ref c = stack_[m - 1];
          if (kind(c) != (op == 'e' ? Kind::list : Kind::set)) bad(c, op == 'e' ? "a list" : "a set");
          extend(c, m);
          break;
        }
        case 's': {                                          // SETITEM
          Ref v = pop(), k = pop();
          Ref c = top();
          if (kind(c) != Kind::dict) bad(c, "a dict");
          stack_.push_back(k);
          stack_.push_back(v);
          extend(c, stack_.size() - 2);
          break;
        }
        case 'u': {                                          // SETITEMS
          std::size_t m = pop_mark();
          if (m == 0 || m > stack_.size()) detail::fail<FormatError>(what_, ": SETITEMS without a dict");
          Ref c = stack_[m - 1];
          if (kind(c) != Kind::dict) bad(c, "a dict");
          if ((stack_.size() - m) % 2) detail::fail<FormatError>(what_, ": SETITEMS with an odd number of items");
          extend(c, m);
          break;
        }
        case 'c': {                                          // GLOBAL "module\nname\n"
          std::string_view module = input_.line(), name = input_.line();
          stack_.push_back(add_global(module, name, allowed));
          break;
        }
        case 0x93: {                                         // STACK_GLOBAL
          Ref name = pop(), module = pop();
          stack_.push_back(add_global(string(module), string(name), allowed));
          break;
        }
        case 'R': case 0x81: {                               // REDUCE, NEWOBJ: recorded, never called
          Ref args = pop(), callable = pop();
          if (kind(args) != Kind::tuple) bad(args, "an argument tuple");
          stack_.push_back(add_object(callable, args));
          break;
        }
        case 0x92: {                                         // NEWOBJ_EX (keyword arguments ignored)
          Ref kwargs = pop(), args = pop(), callable = pop();
          if (kind(kwargs) != Kind::dict) bad(kwargs, "a keyword dict");
          if (kind(args) != Kind::tuple) bad(args, "an argument tuple");
          stack_.push_back(add_object(callable, args));
          break;
        }
        case 'b': {                                          // BUILD
          Ref state = pop();
          Ref target = top();
          if (kind(target) != Kind::object) bad(target, "an object to build");
          nodes_[target].b = std::uint64_t{state} << 32 | (nodes_[target].b & 0xffffffffu);
          break;
        }
        case 'Q': {                                          // BINPERSID
          Ref pid = pop();
          stack_.push_back(add(Kind::persistent_id, pid, 0));
          break;
        }
        case 'p': memo_put(static_cast<std::uint64_t>(decimal(input_.line())), top()); break;  // PUT
        case 'q': memo_put(input_.le<std::uint8_t>(), top()); break;        // BINPUT
        case 'r': memo_put(input_.le<std::uint32_t>(), top()); break;       // LONG_BINPUT
        case 0x94: memo_put(memo_.size(), top()); break;             // MEMOIZE
        case 'g': stack_.push_back(memo_get(static_cast<std::uint64_t>(decimal(input_.line())))); break;  // GET
        case 'h': stack_.push_back(memo_get(input_.le<std::uint8_t>())); break;   // BINGET
        case 'j': stack_.push_back(memo_get(input_.le<std::uint32_t>())); break;  // LONG_BINGET
        case 0x82: case 0x83: case 0x84:
          detail::fail<FormatError>(what_, ": pickle opcode EXT", op - 0x81, " (the copyreg extension registry) is refused");
        case 0x97: case 0x98:
          detail::fail<FormatError>(what_, ": pickle out-of-band buffers (protocol 5 NEXT_BUFFER/READONLY_BUFFER) are refused");
        default:
          detail::fail<FormatError>(what_, ": unsupported pickle opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
                                    " at byte ", input_.pos() - 1, " (text-protocol objects are not used by checkpoint formats)");
      }
    }
  }
  void append_to(Ref c, Kind expected, Ref v) {
    if (kind(c) != expected) bad(c, "a list");
    stack_.push_back(v);
    extend(c, stack_.size() - 1);
  }

  std::string_view data_;
  std::string what_;
  detail::PickleInput input_;
  detail::AppendArray<Node> nodes_;
  detail::AppendArray<Segment> segments_;
  detail::AppendArray<Ref> pool_, stack_, memo_;
  std::unordered_map<std::uint64_t, Ref> sparse_memo_;
  std::vector<std::size_t> marks_;
  std::vector<PickleGlobal> globals_;
  Ref root_ = 0;
  PagePopulator populator_;  // last: stops before the arrays it populates are released
};

}  // namespace shardalg
