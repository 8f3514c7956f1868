// Text forms of placements, compatible with PyTorch's str() and repr():
//   str:  R   S(0)           _S(0, 2)                    P(sum)         BC(0, 64)
//   repr: Replicate()  Shard(dim=0)  _StridedShard(dim=0, sf=2)  Partial(sum)  BlockCyclic(dim=0, block=64)
// BlockCyclic is shardalg's own (PyTorch has none); a non-zero source coordinate is a third
// argument: BC(0, 64, 1).
// Both are parsed (spaces optional, keyword names optional, `P` alone is P(sum)). The older
// strided-shard definition is written with a third argument: `_S(0, 2, legacy)`.
#pragma once

#include <cctype>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shardalg/placement/placement.hpp"
#include "shardalg/core/text_scanner.hpp"

namespace shardalg {

// PyTorch's str(): "R", "S(0)", "_S(0, 2)", "P(sum)".
inline std::string to_string(const Placement& p) {
  switch (p.kind()) {
    case PlacementKind::replicate: return "R";
    case PlacementKind::shard: return detail::concat("S(", p.dim(), ")");
    case PlacementKind::strided_shard:
      return detail::concat("_S(", p.dim(), ", ", p.split_factor(),
                            p.semantics() == StridedSemantics::legacy ? ", legacy)" : ")");
    case PlacementKind::partial: return detail::concat("P(", to_string(p.reduce_op()), ")");
    case PlacementKind::block_cyclic:
      return p.source_coordinate() == 0 ? detail::concat("BC(", p.dim(), ", ", p.block_size(), ")")
                                        : detail::concat("BC(", p.dim(), ", ", p.block_size(), ", ", p.source_coordinate(), ")");
  }
  return "?";
}

// PyTorch's repr(): "Replicate()", "Shard(dim=0)", "_StridedShard(dim=0, sf=2)", "Partial(sum)".
inline std::string to_repr(const Placement& p) {
  switch (p.kind()) {
    case PlacementKind::replicate: return "Replicate()";
    case PlacementKind::shard: return detail::concat("Shard(dim=", p.dim(), ")");
    case PlacementKind::strided_shard:
      return detail::concat("_StridedShard(dim=", p.dim(), ", sf=", p.split_factor(),
                            p.semantics() == StridedSemantics::legacy ? ", legacy)" : ")");
    case PlacementKind::partial: return detail::concat("Partial(", to_string(p.reduce_op()), ")");
    case PlacementKind::block_cyclic:
      return p.source_coordinate() == 0
                 ? detail::concat("BlockCyclic(dim=", p.dim(), ", block=", p.block_size(), ")")
                 : detail::concat("BlockCyclic(dim=", p.dim(), ", block=", p.block_size(), ", src=", p.source_coordinate(), ")");
  }
  return "?";
}

namespace detail {

// Reads an optional `keyword=` before an argument; the keyword must be one of `allowed`.
inline void skip_keyword(Scanner& in, std::initializer_list<std::string_view> allowed) {
  if (!std::isalpha(static_cast<unsigned char>(in.peek()))) return;
  std::size_t start = in.position();
  std::string word = in.identifier();
  if (!in.accept("=")) {
    in.rewind(start);  // not a keyword: the argument itself (a reduce op name)
    return;
  }
  for (std::string_view a : allowed)
    if (word == a) return;
  in.rewind(start);
  in.fail_here("unexpected argument name '", word, "'");
}

inline ReduceOp parse_reduce_op(Scanner& in) {
  bool quoted = in.accept("'") || in.accept("\"");
  std::string name = in.identifier();
  if (quoted && !in.accept("'")) in.expect("\"");
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::product})
    if (name == to_string(op)) return op;
  in.fail_here("unknown reduce op '", name, "' (sum, avg, min, max, product)");
}

inline Placement parse_one_placement(Scanner& in) {
  std::string name = in.identifier();
  if (name == "R" || name == "Replicate") {
    if (in.accept("(")) in.expect(")");
    return Placement::replicate();
  }
  if (name == "S" || name == "Shard") {
    in.expect("(");
    skip_keyword(in, {"dim"});
    index_t dim = in.integer();
    in.expect(")");
    if (dim < 0) in.fail_here("shard dim ", dim, " must be non-negative");
    return Placement::shard(dim);
  }
  if (name == "_S" || name == "_StridedShard") {
    in.expect("(");
    skip_keyword(in, {"dim"});
    index_t dim = in.integer();
    in.expect(",");
    skip_keyword(in, {"sf", "split_factor"});
    index_t sf = in.integer();
    StridedSemantics semantics = StridedSemantics::nested_chunk;
    if (in.accept(",")) {
      std::string which = in.identifier();
      if (which == "legacy") semantics = StridedSemantics::legacy;
      else if (which != "nested") in.fail_here("unknown strided semantics '", which, "' (nested, legacy)");
    }
    in.expect(")");
    if (dim < 0) in.fail_here("shard dim ", dim, " must be non-negative");
    if (sf < 1) in.fail_here("split factor ", sf, " must be >= 1");
    return Placement::strided_shard(dim, sf, semantics);
  }
  if (name == "BC" || name == "BlockCyclic") {
    in.expect("(");
    skip_keyword(in, {"dim"});
    index_t dim = in.integer();
    in.expect(",");
    skip_keyword(in, {"block"});
    index_t block = in.integer();
    index_t source = 0;
    if (in.accept(",")) {
      skip_keyword(in, {"src"});
      source = in.integer();
    }
    in.expect(")");
    if (dim < 0) in.fail_here("shard dim ", dim, " must be non-negative");
    if (block < 1) in.fail_here("block size ", block, " must be >= 1");
    if (source < 0) in.fail_here("source coordinate ", source, " must be >= 0");
    return Placement::block_cyclic(dim, block, source);
  }
  if (name == "P" || name == "Partial") {
    ReduceOp op = ReduceOp::sum;
    if (in.accept("(")) {
      if (!in.accept(")")) {
        skip_keyword(in, {"reduce_op"});
        op = parse_reduce_op(in);
        in.expect(")");
      }
    }
    return Placement::partial(op);
  }
  in.fail_here("unknown placement '", name, "' (R, S(d), _S(d, sf), P(op), BC(d, block) or their repr forms)");
}

}  // namespace detail

// Reads one placement, e.g. "S(0)", "Shard(dim=0)", "_S(0,2)", "P".
inline Placement parse_placement(std::string_view text) {
  detail::Scanner in(text, "placement");
  Placement p = detail::parse_one_placement(in);
  in.expect_end();
  return p;
}

// Reads a comma-separated list, optionally in brackets or parentheses: "_S(0,2),S(0)",
// "[Shard(dim=0), Replicate()]".
inline std::vector<Placement> parse_placements(std::string_view text) {
  detail::Scanner in(text, "placements");
  std::string_view close;
  if (in.accept("[")) close = "]";
  else if (in.accept("(")) close = ")";
  std::vector<Placement> result;
  if (in.at_end() || (!close.empty() && in.peek() == close[0])) in.fail_here("expected at least one placement");
  do result.push_back(detail::parse_one_placement(in));
  while (in.accept(","));
  if (!close.empty()) in.expect(close);
  in.expect_end();
  return result;
}

// "_S(0, 2), S(0)" (str forms joined by ", "); parse_placements reads it back.
inline std::string format_placements(std::span<const Placement> placements) {
  std::string out;
  for (std::size_t i = 0; i < placements.size(); ++i) out += (i ? ", " : "") + to_string(placements[i]);
  return out;
}

}  // namespace shardalg
