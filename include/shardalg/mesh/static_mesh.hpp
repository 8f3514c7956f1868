// Compile-time device meshes: dim names and sizes as template arguments.
//
//   using Mesh = StaticMesh<StaticDim<"dp", 4>, StaticDim<"tp", 2>>;
//   static_assert(Mesh::size == 8 && Mesh::dim_index<"tp"> == 1);
//   DeviceMesh mesh = Mesh::to_runtime();   // the same mesh at run time (row-major ranks)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/hana/tuple.hpp>
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

  // Row-major coordinate of a position (ranks of a static mesh are 0..size-1 in row-major order).
  static constexpr std::array<index_t, ndim> coordinate_of(index_t rank) {
    std::array<index_t, ndim> coord{};
    for (std::size_t i = ndim; i-- > 0;) {
      coord[i] = rank % shape[i];
      rank /= shape[i];
    }
    return coord;
  }

  static DeviceMesh to_runtime() {
    return DeviceMesh(std::vector<std::string>{std::string(MeshDims::name)...}, Dims{MeshDims::size...});
  }
};

}  // namespace shardalg
