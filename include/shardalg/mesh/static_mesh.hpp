// Compile-time device meshes: dim names and sizes as template arguments, sliced and flattened as
// types (Boost.Hana computes the resulting dim lists).
//
//   using Mesh = StaticMesh<StaticDim<"dp", 2>, StaticDim<"cp", 2>, StaticDim<"tp", 2>>;
//   static_assert(Mesh::size == 8 && Mesh::dim_index<"tp"> == 2);
//   using DpTp = Mesh::slice<"dp", "tp">;             // StaticMesh<dp=2, tp=2>: mesh["dp", "tp"]
//   using Flat = Mesh::flatten<"dp_cp", "dp", "cp">;  // StaticMesh<dp_cp=4, tp=2>
//   DeviceMesh mesh = Mesh::to_runtime();   // the same mesh at run time (row-major ranks)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/hana/append.hpp>
#include <boost/hana/bool.hpp>
#include <boost/hana/concat.hpp>
#include <boost/hana/drop_front.hpp>
#include <boost/hana/filter.hpp>
#include <boost/hana/take_front.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>
#include <boost/hana/unpack.hpp>

#include "shardalg/mesh/device_mesh.hpp"

namespace shardalg {

// A string usable as a template argument ("dp").
template <std::size_t N>
struct FixedString {
  char chars[N]{};
  constexpr FixedString(const char (&text)[N]) { std::copy(text, text + N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

template <FixedString Name, index_t Size>
struct StaticDim {
  static_assert(Size > 0, "shardalg: a static mesh dim size must be positive");
  static_assert(Name.view().size() > 0, "shardalg: a static mesh dim needs a non-empty name");
  static constexpr std::string_view name = Name.view();
  static constexpr index_t size = Size;
};

template <class... MeshDims>
struct StaticMesh {
  static_assert(sizeof...(MeshDims) > 0, "shardalg: a static mesh needs at least one dim");

  static constexpr std::size_t ndim = sizeof...(MeshDims);
  static constexpr std::array<std::string_view, ndim> names{MeshDims::name...};
  static constexpr std::array<index_t, ndim> shape{MeshDims::size...};
  static constexpr index_t size = (MeshDims::size * ...);
  // The dims as a Hana tuple of types, for generic code over the mesh.
  static constexpr auto dims = boost::hana::tuple_t<MeshDims...>;

 private:
  static constexpr bool names_distinct() {
    for (std::size_t i = 0; i < ndim; ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (names[i] == names[j]) return false;
    return true;
  }
  static_assert(names_distinct(), "shardalg: static mesh dim names must be distinct");

  template <FixedString Name>
  static constexpr std::size_t find_dim() {
    for (std::size_t i = 0; i < ndim; ++i)
      if (names[i] == Name.view()) return i;
    return ndim;
  }

 public:
  template <FixedString Name>
  static constexpr std::size_t dim_index = [] {
    constexpr std::size_t index = find_dim<Name>();
    static_assert(index < ndim, "shardalg: the static mesh has no dim with this name");
    return index;
  }();

  // Row-major coordinate of a rank (ranks of a static mesh are 0..size-1 in row-major order), by
  // DeviceMesh's arithmetic (row_major_coordinate).
  static constexpr std::array<index_t, ndim> coordinate_of(index_t rank) {
    Dims coord = row_major_coordinate(Dims(shape), rank);
    std::array<index_t, ndim> out{};
    for (std::size_t i = 0; i < ndim; ++i) out[i] = coord[i];
    return out;
  }

 private:
  template <class Dimensions>
  static constexpr auto mesh_of(Dimensions dimensions) {
    return boost::hana::unpack(dimensions, [](auto... d) { return boost::hana::type_c<StaticMesh<typename decltype(d)::type...>>; });
  }
  template <std::size_t N>
  static constexpr bool increasing(const std::array<std::size_t, N>& indices) {
    for (std::size_t i = 1; i < N; ++i)
      if (indices[i] <= indices[i - 1]) return false;
    return true;
  }
  template <FixedString... Names>
  static constexpr auto slice_type() {
    static_assert(sizeof...(Names) > 0, "shardalg: a static mesh slice names at least one dim");
    static_assert(((find_dim<Names>() < ndim) && ...), "shardalg: the static mesh has no dim with this name");
    static_assert(increasing(std::array<std::size_t, sizeof...(Names)>{find_dim<Names>()...}),
                  "shardalg: a static mesh slice names its dims once each, in mesh order");
    return mesh_of(boost::hana::filter(dims, [](auto dim) {
      using D = typename decltype(dim)::type;
      return boost::hana::bool_c<((D::name == Names.view()) || ...)>;
    }));
  }
  template <FixedString NewName, FixedString... Names>
  static constexpr auto flatten_type() {
    static_assert(sizeof...(Names) > 0, "shardalg: a static mesh flatten names at least one dim");
    static_assert(((find_dim<Names>() < ndim) && ...), "shardalg: the static mesh has no dim with this name");
    constexpr std::array<std::size_t, sizeof...(Names)> indices{find_dim<Names>()...};
    static_assert(increasing(indices) && indices.back() - indices.front() + 1 == indices.size(),
                  "shardalg: a static mesh flattens adjacent dims, in mesh order (its ranks stay row-major)");
    constexpr index_t merged = (shape[find_dim<Names>()] * ...);
    auto before = boost::hana::take_front(dims, boost::hana::size_c<indices.front()>);
    auto after = boost::hana::drop_front(dims, boost::hana::size_c<indices.back() + 1>);
    return mesh_of(boost::hana::concat(boost::hana::append(before, boost::hana::type_c<StaticDim<NewName, merged>>), after));
  }

 public:
  // The sub-mesh of the named dims (given in mesh order) as a type: the names and sizes of
  // PyTorch's mesh["dp", "tp"], its ranks numbered 0..size-1 (a static mesh is row-major; the
  // run-time DeviceMesh::slice keeps the world's ranks through a given rank).
  // Mesh (dp=2, cp=2, tp=2)::slice<"dp", "tp"> is StaticMesh<dp=2, tp=2>.
  template <FixedString... Names>
  using slice = typename decltype(slice_type<Names...>())::type;

  // The named dims (adjacent, in mesh order) merged into one dim `NewName` of their product size,
  // in place: ranks keep their row-major order, so its groups are DeviceMesh::flatten's.
  // Mesh (dp=2, cp=2, tp=2)::flatten<"dp_cp", "dp", "cp"> is StaticMesh<dp_cp=4, tp=2>.
  template <FixedString NewName, FixedString... Names>
  using flatten = typename decltype(flatten_type<NewName, Names...>())::type;

  static DeviceMesh to_runtime() {
    return DeviceMesh(std::vector<std::string>{std::string(MeshDims::name)...}, Dims{MeshDims::size...});
  }
};

}  // namespace shardalg
