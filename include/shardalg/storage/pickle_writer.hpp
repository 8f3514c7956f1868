// A pickle (protocol 2) written opcode by opcode: the few records DCP's `.metadata` and
// torch.save's `data.pkl` are made of, in the form Python's own pickler gives them, so any
// Python (and pickle_reader.hpp) loads them.
//
// Globals are memoized: a class named a million times (torch.Size in a large metadata file) is
// spelled once and fetched from the memo after.
//
// Example: torch.Size([5, 3]) is
//   PickleWriter p;
//   p.global("torch", "Size"); p.integer(5); p.integer(3); p.tuple(2); p.tuple(1); p.reduce();
//   std::string bytes = p.finish();   // loads as torch.Size([5, 3])
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "shardalg/core/error.hpp"

namespace shardalg {

class PickleWriter {
 public:
  PickleWriter() { out_ += "\x80\x02"; }

  void none() { out_ += 'N'; }
  void boolean(bool value) { out_ += value ? '\x88' : '\x89'; }
  void integer(std::int64_t value) {
    if (value >= 0 && value < 256) {
      out_ += 'K';
      le(static_cast<std::uint64_t>(value), 1);
    } else if (value >= 0 && value < 65536) {
      out_ += 'M';
      le(static_cast<std::uint64_t>(value), 2);
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
      out_ += 'J';
      le(static_cast<std::uint64_t>(static_cast<std::uint32_t>(static_cast<std::int32_t>(value))), 4);
    } else {  // LONG1: little-endian two's complement, 8 bytes is always enough for int64
      out_ += '\x8a';
      out_ += '\x08';
      le(static_cast<std::uint64_t>(value), 8);
    }
  }
  void string(std::string_view text) {
    out_ += 'X';
    le(text.size(), 4);
    out_ += text;
  }
  // A class or function by module and name (memoized).
  void global(std::string_view module, std::string_view name) {
    auto key = std::make_pair(std::string(module), std::string(name));
    if (auto it = memo_.find(key); it != memo_.end()) {
      out_ += 'j';
      le(it->second, 4);
      return;
    }
    out_ += 'c';
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
    std::uint64_t slot = memo_.size();
    memo_.emplace(std::move(key), slot);
    out_ += 'r';
    le(slot, 4);
  }
  void mark() { out_ += '('; }
  // A tuple of the top `n` values (0 to 3), or of everything since the mark (n < 0).
  void tuple(int n) {
    static constexpr char opcode[] = {')', '\x85', '\x86', '\x87'};
    if (n < 0 || n > 3) {
      out_ += 't';
      return;
    }
    out_ += opcode[n];
  }
  void empty_dict() { out_ += '}'; }
  void empty_list() { out_ += ']'; }
  void set_items() { out_ += 'u'; }  // pairs since the mark into the dict below it
  void append_items() { out_ += 'e'; }  // values since the mark into the list below it
  void reduce() { out_ += 'R'; }      // callable(args)
  void new_object() {                 // cls.__new__(cls) of the class on top, as NEWOBJ with no args
    out_ += ')';
    out_ += '\x81';
  }
  void build() { out_ += 'b'; }                 // object.__setstate__(state) / __dict__.update
  void persistent_id() { out_ += 'Q'; }         // the top value is a persistent id
  std::string finish() {
    out_ += '.';
    return std::move(out_);
  }

 private:
  void le(std::uint64_t value, int width) {
    for (int i = 0; i < width; ++i) out_ += static_cast<char>((value >> (8 * i)) & 0xff);
  }
  std::string out_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> memo_;
};

}  // namespace shardalg
