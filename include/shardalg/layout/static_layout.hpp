// Compile-time mesh layouts. Shapes mix static and dynamic extents the way CuTe's Int<N> does:
// an extent is either int_c<N> (known at compile time, stored nowhere) or an index_t.
// When everything is static, local shapes and offsets are constant expressions; either way they
// come from the same tile arithmetic as MeshLayout, so both forms agree by construction.
//
//   using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;
//   constexpr auto layout = make_static_layout(Mesh{}, hana::make_tuple(strided_shard_c<0, 2>, shard_c<0>),
//                                              hana::make_tuple(int_c<15>, int_c<5>));
//   static_assert(layout.local_shape({3, 1}) == std::array<index_t, 2>{1, 5});
#pragma once

#include <array>
#include <type_traits>

#include <boost/hana/integral_constant.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/unpack.hpp>

#include "shardalg/layout/mesh_layout.hpp"
#include "shardalg/mesh/static_mesh.hpp"
#include "shardalg/placement/static_placement.hpp"

namespace shardalg {

// A compile-time extent.
template <index_t N>
inline constexpr boost::hana::integral_constant<index_t, N> int_c{};

namespace detail {
template <class T>
struct is_static_extent : std::false_type {};
template <index_t N>
struct is_static_extent<boost::hana::integral_constant<index_t, N>> : std::true_type {};
}  // namespace detail

template <class Mesh, class Placements, class Shape>
class StaticLayout;

template <class... MeshDims, class... Ps, class... Extents>
class StaticLayout<StaticMesh<MeshDims...>, boost::hana::tuple<Ps...>, boost::hana::tuple<Extents...>> {
  using Mesh = StaticMesh<MeshDims...>;

 public:
  static constexpr std::size_t tensor_ndim = sizeof...(Extents);
  static constexpr std::array<Placement, sizeof...(Ps)> placements{Ps::value...};
  // True when every extent is static: local shapes and offsets are then constant expressions.
  static constexpr bool is_static = (detail::is_static_extent<Extents>::value && ...);

  static_assert((StaticPlacement<Ps> && ...), "shardalg: placements must be static placement types (shard_c<d>, ...)");
  // MeshLayout's own rule (check_placements), evaluated at compile time.
  static constexpr PlacementCheck check = check_placements(placements, Mesh::shape, tensor_ndim);
  static_assert(check.problem != PlacementProblem::count, "shardalg: the number of placements must equal the mesh's number of dims");
  static_assert(check.problem != PlacementProblem::shard_dim, "shardalg: a Shard/StridedShard dim must be less than the tensor rank");
  static_assert(check.problem != PlacementProblem::block_cyclic_source,
                "shardalg: a BlockCyclic source coordinate must be less than its mesh dim's size");
  static_assert(((detail::is_static_extent<Extents>::value || std::is_convertible_v<Extents, index_t>) && ...),
                "shardalg: extents must be int_c<N> or integers");

  constexpr StaticLayout(Mesh, boost::hana::tuple<Ps...>, boost::hana::tuple<Extents...> shape) : shape_(shape) {}

  constexpr Dims global_shape() const {
    return boost::hana::unpack(shape_, [](auto... extents) { return Dims{static_cast<index_t>(extents)...}; });
  }

  // Local shape of the rank at a mesh coordinate (PyTorch's compute_local_shape_and_global_offset).
  constexpr std::array<index_t, tensor_ndim> local_shape(const std::array<index_t, Mesh::ndim>& coord) const {
    return to_array(info(coord).local_shape);
  }
  // Global offset of the rank at a mesh coordinate (the dim size for an empty shard).
  constexpr std::array<index_t, tensor_ndim> global_offset(const std::array<index_t, Mesh::ndim>& coord) const {
    return to_array(info(coord).global_offset);
  }

  MeshLayout to_runtime() const {
    return MeshLayout(Mesh::to_runtime(), std::vector<Placement>(placements.begin(), placements.end()), global_shape());
  }

 private:
  constexpr ShardInfo info(const std::array<index_t, Mesh::ndim>& coord) const {
    for (std::size_t m = 0; m < Mesh::ndim; ++m)
      if (coord[m] < 0 || coord[m] >= Mesh::shape[m]) detail::fail("static layout: coordinate outside the mesh");
    Dims shape = global_shape();
    for (index_t extent : shape)
      if (extent < 0) detail::fail("static layout: negative extent in shape ", shape);
    return shard_info_of(tile_at_coordinate(Mesh::shape, coord, placements, shape), shape);
  }
  static constexpr std::array<index_t, tensor_ndim> to_array(const Dims& dims) {
    std::array<index_t, tensor_ndim> result{};
    for (std::size_t d = 0; d < tensor_ndim; ++d) result[d] = dims[d];
    return result;
  }

  boost::hana::tuple<Extents...> shape_;
};

template <class Mesh, class... Ps, class... Extents>
constexpr auto make_static_layout(Mesh mesh, boost::hana::tuple<Ps...> placements, boost::hana::tuple<Extents...> shape) {
  return StaticLayout<Mesh, boost::hana::tuple<Ps...>, boost::hana::tuple<Extents...>>(mesh, placements, shape);
}

}  // namespace shardalg
