// RapidCheck generators for meshes, placements, shapes and index maps.
#pragma once

#include <rapidcheck.h>

#include "../test_support.hpp"

namespace shardalg::testing {

// Extents that exercise uneven and empty shards: 0, 1, primes, and small composites.
inline rc::Gen<index_t> gen_extent() { return rc::gen::element<index_t>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17); }

// The values in a random order (sorted by random keys).
template <class T>
rc::Gen<std::vector<T>> gen_shuffled(std::vector<T> values) {
  return rc::gen::map(rc::gen::container<std::vector<int>>(values.size(), rc::gen::arbitrary<int>()),
                      [values](const std::vector<int>& keys) {
                        std::vector<std::size_t> order(values.size());
                        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
                        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
                        std::vector<T> result;
                        for (std::size_t i : order) result.push_back(values[i]);
                        return result;
                      });
}

// 0-3 dims (0: a scalar, such as a learned temperature).
inline rc::Gen<Dims> gen_shape() {
  return rc::gen::mapcat(rc::gen::inRange<std::size_t>(0, 4), [](std::size_t ndim) {
    return rc::gen::map(rc::gen::container<std::vector<index_t>>(ndim, gen_extent()),
                        [](const std::vector<index_t>& v) { return Dims(v); });
  });
}

// 1-4 dims of sizes 1-8, named a, b, ...; ranks in row-major order or randomly permuted.
inline rc::Gen<DeviceMesh> gen_mesh() {
  return rc::gen::mapcat(rc::gen::inRange<std::size_t>(1, 5), [](std::size_t ndim) {
    return rc::gen::mapcat(rc::gen::container<std::vector<index_t>>(ndim, rc::gen::inRange<index_t>(1, 9)),
                           [](const std::vector<index_t>& sizes) {
                             Dims shape(sizes);
                             std::vector<std::string> names;
                             for (std::size_t d = 0; d < sizes.size(); ++d) names.push_back(std::string(1, static_cast<char>('a' + d)));
                             std::vector<index_t> iota(static_cast<std::size_t>(volume(shape)));
                             for (std::size_t i = 0; i < iota.size(); ++i) iota[i] = static_cast<index_t>(i);
                             return rc::gen::map(rc::gen::oneOf(rc::gen::just(iota), gen_shuffled(iota)),
                                                 [names, shape](const std::vector<index_t>& devices) {
                                                   return DeviceMesh(names, shape, devices);
                                                 });
                           });
  });
}

// Placements of a tensor of `tensor_ndim` dims; a scalar can only be replicated or partial.
inline rc::Gen<Placement> gen_placement(std::size_t tensor_ndim) {
  auto partial = rc::gen::map(rc::gen::element(ReduceOp::sum, ReduceOp::avg, ReduceOp::min, ReduceOp::max, ReduceOp::product),
                              [](ReduceOp op) { return Placement::partial(op); });
  if (tensor_ndim == 0) return rc::gen::oneOf(rc::gen::just(Placement::replicate()), partial);
  auto dim = rc::gen::inRange<index_t>(0, static_cast<index_t>(tensor_ndim));
  return rc::gen::oneOf(
      rc::gen::just(Placement::replicate()),
      rc::gen::map(dim, [](index_t d) { return Placement::shard(d); }),
      rc::gen::map(dim, [](index_t d) { return Placement::shard(d); }),
      rc::gen::map(rc::gen::tuple(dim, rc::gen::inRange<index_t>(1, 9), rc::gen::arbitrary<bool>()),
                   [](const std::tuple<index_t, index_t, bool>& t) {
                     return Placement::strided_shard(std::get<0>(t), std::get<1>(t),
                                                     std::get<2>(t) ? StridedSemantics::legacy : StridedSemantics::nested_chunk);
                   }),
      partial,
      rc::gen::map(rc::gen::tuple(dim, rc::gen::inRange<index_t>(1, 4)),
                   [](const std::tuple<index_t, index_t>& t) { return Placement::block_cyclic(std::get<0>(t), std::get<1>(t)); }));
}

inline rc::Gen<MeshLayout> gen_mesh_layout() {
  return rc::gen::mapcat(rc::gen::tuple(gen_mesh(), gen_shape()), [](const std::tuple<DeviceMesh, Dims>& t) {
    const DeviceMesh& mesh = std::get<0>(t);
    const Dims& shape = std::get<1>(t);
    return rc::gen::map(rc::gen::container<std::vector<Placement>>(mesh.ndim(), gen_placement(shape.size())),
                        [mesh, shape](const std::vector<Placement>& placements) { return MeshLayout(mesh, placements, shape); });
  });
}

// A monotone index map inside [0, limit).
inline rc::Gen<IndexMap> gen_index_map(index_t limit) {
  return rc::gen::map(rc::gen::container<std::vector<bool>>(static_cast<std::size_t>(limit), rc::gen::arbitrary<bool>()),
                      [](const std::vector<bool>& held) {
                        IndexMap map;
                        for (std::size_t i = 0; i < held.size(); ++i)
                          if (held[i]) map.append(static_cast<index_t>(i), 1);
                        return map;
                      });
}

}  // namespace shardalg::testing

namespace rc {
template <>
struct Arbitrary<shardalg::MeshLayout> {
  static Gen<shardalg::MeshLayout> arbitrary() { return shardalg::testing::gen_mesh_layout(); }
};
}  // namespace rc

// Runs a RapidCheck property inside a doctest test case.
#define SHARDALG_PROPERTY(description, ...) CHECK(rc::check(description, __VA_ARGS__))
