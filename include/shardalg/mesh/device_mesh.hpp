// DeviceMesh: an N-d array of ranks with named dims (PyTorch DeviceMesh, XLA TileAssignment;
// docs/semantics.md section 4).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shardalg/core/dims.hpp"
#include "shardalg/core/rank_limit.hpp"
#include "shardalg/mesh/device_list.hpp"

namespace shardalg {

class DeviceMesh {
 public:
  // Ranks 0..N-1 in row-major order (PyTorch's init_device_mesh).
  DeviceMesh(const std::vector<std::string>& names, const Dims& shape)
      : DeviceMesh(names, shape, iota_devices(names, shape)) {}

  // `devices[i]` is the rank at row-major position i. Ranks must be distinct and non-negative;
  // they need not be 0..N-1 (a mesh over a subset or permutation of the world).
  DeviceMesh(std::vector<std::string> names, Dims shape, std::vector<index_t> devices)
      : names_(std::move(names)), shape_(std::move(shape)), devices_(std::move(devices)) {
    validate();
    index_position();
  }

  // Reads "dp=4,tp=2" (and optionally a device list, see parse_device_list, whose dims must
  // hold as many devices as the mesh).
  // Example: parse("dp=2,tp=2", "[4]<=[2,2]T(1,0)") has ranks [[0,2],[1,3]].
  static DeviceMesh parse(std::string_view spec, std::string_view device_list = {}) {
    detail::Scanner in(spec, "mesh");
    std::vector<std::string> names;
    Dims shape;
    do {
      names.push_back(in.identifier());
      in.expect("=");
      shape.push_back(in.integer());
    } while (in.accept(","));
    in.expect_end();
    if (device_list.empty()) return DeviceMesh(names, shape);
    DeviceListText devices = parse_device_list(device_list);
    if (volume(devices.dims) != checked_product(as_span(shape)))
      detail::fail("mesh '", spec, "' has ", volume(shape), " ranks but device list '", device_list, "' has ",
                   volume(devices.dims));
    return DeviceMesh(std::move(names), std::move(shape), std::move(devices.devices));
  }

  std::size_t ndim() const { return shape_.size(); }
  index_t size() const { return static_cast<index_t>(devices_.size()); }
  index_t size(std::size_t dim) const { return shape_[checked_dim(dim)]; }
  const Dims& shape() const { return shape_; }
  const std::vector<std::string>& names() const { return names_; }
  const std::string& name(std::size_t dim) const { return names_[checked_dim(dim)]; }
  const std::vector<index_t>& devices() const { return devices_; }

  // Index of a named dim; Error naming the dim and the mesh when absent.
  std::size_t dim_index(std::string_view name) const {
    for (std::size_t d = 0; d < names_.size(); ++d)
      if (names_[d] == name) return d;
    detail::fail("mesh ", to_string(), " has no dim named '", name, "'");
  }

  bool contains(index_t rank) const { return position_of(rank).has_value(); }

  // Row-major position of a rank in the mesh (its index in devices()), or nothing when absent.
  // Constant time for the iota device list, a binary search otherwise.
  std::optional<index_t> position_of(index_t rank) const {
    if (iota_) {
      if (rank < 0 || rank >= size()) return std::nullopt;
      return rank;
    }
    auto it = std::lower_bound(by_rank_.begin(), by_rank_.end(), std::pair<index_t, index_t>{rank, 0});
    if (it == by_rank_.end() || it->first != rank) return std::nullopt;
    return it->second;
  }

  // Coordinate of a rank, or nothing when the rank is not in the mesh.
  // Example: rank 5 in a row-major (2,2,2) mesh -> [1, 0, 1].
  std::optional<Dims> coordinate_of(index_t rank) const {
    auto position = position_of(rank);
    if (!position) return std::nullopt;
    return row_major_coordinate(shape_, *position);
  }

  // Rank at a coordinate; Error when the coordinate is outside the mesh.
  index_t rank_at(const Dims& coord) const {
    if (coord.size() != ndim()) detail::fail("coordinate ", coord, " has ", coord.size(), " dims, mesh has ", ndim());
    for (std::size_t d = 0; d < ndim(); ++d)
      if (coord[d] < 0 || coord[d] >= shape_[d])
        detail::fail("coordinate ", coord, " is outside mesh shape ", shape_);
    return devices_[static_cast<std::size_t>(row_major_position(shape_, coord))];
  }

  // All groups along `dim`: the rank lists that vary only in that dim, in PyTorch's order
  // (mesh.swapdims(-1, dim).reshape(-1, size(dim))): the other dims are enumerated row-major
  // after swapping `dim` with the last dim. Mesh (2,4): dim 0 -> [0,4] [1,5] [2,6] [3,7];
  // mesh (2,2,2): dim 0 -> [0,4] [2,6] [1,5] [3,7].
  std::vector<std::vector<index_t>> groups(std::size_t dim) const {
    checked_dim(dim);
    std::vector<std::size_t> outer;  // the enumerated dims, slowest first
    for (std::size_t d = 0; d + 1 < ndim(); ++d) outer.push_back(d == dim ? ndim() - 1 : d);
    Dims outer_shape;
    for (std::size_t d : outer) outer_shape.push_back(shape_[d]);
    std::vector<std::vector<index_t>> result;
    Dims coord(ndim(), 0);
    for (index_t g = 0; g < volume(outer_shape); ++g) {
      Dims outer_coord = row_major_coordinate(outer_shape, g);
      for (std::size_t k = 0; k < outer.size(); ++k) coord[outer[k]] = outer_coord[k];
      result.push_back(group_at(dim, coord));
    }
    return result;
  }

  // The group along `dim` through `rank`. Error when the rank is not in the mesh.
  std::vector<index_t> group_of(std::size_t dim, index_t rank) const {
    checked_dim(dim);
    return group_at(dim, require_coordinate(rank));
  }

  // The groups of several mesh dims (by index, in the order given) taken as one flattened dim:
  // the rank lists that vary only in those dims, members listed row-major over the given dims'
  // coordinates, one group per coordinate of the other dims (in mesh row-major order, each
  // group led by its member whose given coordinates are all 0). The collective programs' groups.
  // Mesh (2,2,2), dims {0, 2}: [0,1,4,5] [2,3,6,7] (flatten(dp,tp) on (dp,cp,tp)).
  std::vector<std::vector<index_t>> flattened_groups(const std::vector<index_t>& mesh_dims) const {
    Dims sizes;
    for (index_t m : mesh_dims) sizes.push_back(size(static_cast<std::size_t>(m)));
    std::vector<std::vector<index_t>> result;
    for (index_t rank : devices_) {
      Dims coord = *coordinate_of(rank);
      if (std::any_of(mesh_dims.begin(), mesh_dims.end(), [&](index_t m) { return coord[static_cast<std::size_t>(m)] != 0; })) continue;
      std::vector<index_t> group;
      for (index_t i = 0; i < volume(sizes); ++i) {
        Dims within = row_major_coordinate(sizes, i);
        for (std::size_t k = 0; k < mesh_dims.size(); ++k) coord[static_cast<std::size_t>(mesh_dims[k])] = within[k];
        group.push_back(rank_at(coord));
      }
      result.push_back(std::move(group));
    }
    return result;
  }

  // The sub-mesh of the named dims through `rank` (PyTorch mesh["dp", "tp"] on that rank).
  // Names must be given in mesh order.
  DeviceMesh slice(const std::vector<std::string>& dim_names, index_t rank) const {
    Dims coord = require_coordinate(rank);
    std::vector<std::size_t> kept = dims_in_mesh_order(dim_names, "slice");
    std::vector<bool> is_kept(ndim(), false);
    for (std::size_t d : kept) is_kept[d] = true;
    std::vector<std::string> names;
    Dims shape;
    for (std::size_t d : kept) {
      names.push_back(names_[d]);
      shape.push_back(shape_[d]);
    }
    std::vector<index_t> devices;
    index_t count = volume(shape);
    for (index_t i = 0; i < count; ++i) {
      Dims sub = row_major_coordinate(shape, i);
      Dims full = coord;
      for (std::size_t k = 0; k < kept.size(); ++k) full[kept[k]] = sub[k];
      devices.push_back(rank_at(full));
    }
    return DeviceMesh(std::move(names), std::move(shape), std::move(devices));
  }

  // Merges the named dims (given in mesh order; need not be adjacent) into one dim of their
  // product size, placed where the first of them was; the other dims keep their order.
  // Default name: the names joined by "_". On (dp,cp,tp)=(2,2,2): flatten(dp,tp) has groups
  // [0,1,4,5] [2,3,6,7].
  DeviceMesh flatten(const std::vector<std::string>& dim_names, std::string new_name = {}) const {
    std::vector<std::size_t> merged = dims_in_mesh_order(dim_names, "flatten");
    if (new_name.empty())
      for (std::size_t k = 0; k < merged.size(); ++k) new_name += (k ? "_" : "") + names_[merged[k]];
    // New axis order: the merged dims together at the first one's place.
    std::vector<std::size_t> order;
    for (std::size_t d = 0; d < ndim(); ++d) {
      bool is_merged = std::find(merged.begin(), merged.end(), d) != merged.end();
      if (d == merged[0]) order.insert(order.end(), merged.begin(), merged.end());
      else if (!is_merged) order.push_back(d);
    }
    std::vector<std::string> names;
    Dims shape;
    for (std::size_t d = 0; d < ndim(); ++d) {
      if (d == merged[0]) {
        names.push_back(new_name);
        index_t size = 1;
        for (std::size_t m : merged) size *= shape_[m];
        shape.push_back(size);
      } else if (std::find(merged.begin(), merged.end(), d) == merged.end()) {
        names.push_back(names_[d]);
        shape.push_back(shape_[d]);
      }
    }
    return DeviceMesh(std::move(names), std::move(shape), transposed_devices(order));
  }

  // Splits one dim into several (row-major): (8) -> (2,2,2) with strides (4,2,1).
  DeviceMesh unflatten(std::string_view dim_name, const Dims& sizes, const std::vector<std::string>& new_names) const {
    std::size_t dim = dim_index(dim_name);
    if (sizes.size() != new_names.size())
      detail::fail("unflatten '", dim_name, "': ", sizes.size(), " sizes but ", new_names.size(), " names");
    for (index_t s : sizes)
      if (s <= 0) detail::fail("unflatten '", dim_name, "': size ", s, " must be positive");
    if (volume(sizes) != shape_[dim])
      detail::fail("unflatten '", dim_name, "': sizes ", sizes, " multiply to ", volume(sizes), ", not the dim size ",
                   shape_[dim]);
    std::vector<std::string> names;
    Dims shape;
    for (std::size_t d = 0; d < ndim(); ++d) {
      if (d == dim) {
        names.insert(names.end(), new_names.begin(), new_names.end());
        for (index_t s : sizes) shape.push_back(s);
      } else {
        names.push_back(names_[d]);
        shape.push_back(shape_[d]);
      }
    }
    return DeviceMesh(std::move(names), std::move(shape), devices_);
  }

  // The same ranks with the dims reordered: new dim i is the dim named dim_names[i].
  DeviceMesh permute(const std::vector<std::string>& dim_names) const {
    if (dim_names.size() != ndim()) detail::fail("permute: ", dim_names.size(), " names for a mesh of ", ndim(), " dims");
    std::vector<std::size_t> order;
    for (const auto& name : dim_names) {
      order.push_back(dim_index(name));
      if (std::count(order.begin(), order.end(), order.back()) > 1) detail::fail("permute: dim '", name, "' named twice");
    }
    std::vector<std::string> names;
    Dims shape;
    for (std::size_t d : order) {
      names.push_back(names_[d]);
      shape.push_back(shape_[d]);
    }
    return DeviceMesh(std::move(names), std::move(shape), transposed_devices(order));
  }

  // "DeviceMesh(dp=4, tp=2, devices=[4,2]<=[8])".
  std::string to_string() const {
    std::string out = "DeviceMesh(";
    for (std::size_t d = 0; d < ndim(); ++d) out += detail::concat(names_[d], '=', shape_[d], ", ");
    return out + "devices=" + devices_string() + ")";
  }
  // The device list in compact form when possible (see format_device_list).
  std::string devices_string() const { return format_device_list(shape_, devices_); }
  // "dp=4,tp=2", the spec that parse() reads.
  std::string spec_string() const {
    std::string out;
    for (std::size_t d = 0; d < ndim(); ++d) out += detail::concat(d ? "," : "", names_[d], '=', shape_[d]);
    return out;
  }

  friend bool operator==(const DeviceMesh& a, const DeviceMesh& b) {
    return a.names_ == b.names_ && a.shape_ == b.shape_ && a.devices_ == b.devices_;
  }

  std::size_t hash() const {
    std::size_t h = 0;
    auto mix = [&h](std::size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
    for (const auto& n : names_) mix(std::hash<std::string>{}(n));
    for (index_t s : shape_) mix(std::hash<index_t>{}(s));
    if (iota_) return h;  // devices 0..size-1: the shape says it all
    for (index_t r : devices_) mix(std::hash<index_t>{}(r));
    return h;
  }

 private:
  static std::vector<index_t> iota_devices(const std::vector<std::string>& names, const Dims& shape) {
    for (std::size_t d = 0; d < shape.size(); ++d)
      if (shape[d] <= 0)
        detail::fail("mesh dim '", d < names.size() ? names[d] : std::to_string(d), "' has size ", shape[d],
                     "; sizes must be positive");
    if (volume(shape) > max_ranks) detail::fail("mesh shape ", shape, " has ", volume(shape), " ranks, over the limit ", max_ranks, " (meshes list their ranks)");
    std::vector<index_t> devices(static_cast<std::size_t>(volume(shape)));
    std::iota(devices.begin(), devices.end(), index_t{0});
    return devices;
  }

  void validate() const {
    if (shape_.empty()) detail::fail("a mesh needs at least one dim");
    if (names_.size() != shape_.size())
      detail::fail("mesh shape ", shape_, " has ", shape_.size(), " dims but ", names_.size(), " names were given");
    for (std::size_t d = 0; d < ndim(); ++d) {
      if (shape_[d] <= 0) detail::fail("mesh dim '", names_[d], "' has size ", shape_[d], "; sizes must be positive");
      const std::string& n = names_[d];
      bool valid = !n.empty() && !std::isdigit(static_cast<unsigned char>(n[0])) &&
                   std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
      if (!valid) detail::fail("mesh dim name '", n, "' is not a name (letters, digits, '_')");
      for (std::size_t e = 0; e < d; ++e)
        if (names_[e] == n) detail::fail("mesh dim name '", n, "' appears twice");
    }
    index_t count = volume(shape_);
    if (count != static_cast<index_t>(devices_.size()))
      detail::fail("mesh shape ", shape_, " needs ", count, " devices, got ", devices_.size());
  }

  void index_position() {
    iota_ = true;
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i] < 0) detail::fail("device list has negative rank ", devices_[i]);
      if (devices_[i] != static_cast<index_t>(i)) iota_ = false;
    }
    if (iota_) return;
    by_rank_.reserve(devices_.size());
    for (std::size_t i = 0; i < devices_.size(); ++i) by_rank_.emplace_back(devices_[i], static_cast<index_t>(i));
    std::sort(by_rank_.begin(), by_rank_.end());
    for (std::size_t i = 1; i < by_rank_.size(); ++i)
      if (by_rank_[i].first == by_rank_[i - 1].first)
        detail::fail("device list has rank ", by_rank_[i].first, " twice; it must list distinct ranks");
  }

  std::size_t checked_dim(std::size_t dim) const {
    if (dim >= ndim()) detail::fail("mesh dim ", dim, " is out of range for a mesh of ", ndim(), " dims");
    return dim;
  }

  Dims require_coordinate(index_t rank) const {
    auto coord = coordinate_of(rank);
    if (!coord) detail::fail("rank ", rank, " is not in ", to_string());
    return *coord;
  }

  std::vector<index_t> group_at(std::size_t dim, Dims coord) const {
    std::vector<index_t> group;
    for (index_t i = 0; i < shape_[dim]; ++i) {
      coord[dim] = i;
      group.push_back(devices_[static_cast<std::size_t>(row_major_position(shape_, coord))]);
    }
    return group;
  }

  std::vector<std::size_t> dims_in_mesh_order(const std::vector<std::string>& dim_names, std::string_view op) const {
    if (dim_names.empty()) detail::fail(op, ": no dim names given");
    std::vector<std::size_t> dims;
    for (const auto& name : dim_names) {
      std::size_t d = dim_index(name);
      if (!dims.empty() && d <= dims.back())
        detail::fail(op, ": dim '", name, "' is out of mesh order (or repeated) in the names given; mesh ", to_string());
      dims.push_back(d);
    }
    return dims;
  }

  // Devices of the mesh array transposed so that new axis i is old axis order[i].
  std::vector<index_t> transposed_devices(const std::vector<std::size_t>& order) const {
    Dims new_shape;
    for (std::size_t d : order) new_shape.push_back(shape_[d]);
    std::vector<index_t> devices;
    devices.reserve(devices_.size());
    Dims old_coord(ndim(), 0);
    for (index_t i = 0; i < size(); ++i) {
      Dims new_coord = row_major_coordinate(new_shape, i);
      for (std::size_t k = 0; k < order.size(); ++k) old_coord[order[k]] = new_coord[k];
      devices.push_back(devices_[static_cast<std::size_t>(row_major_position(shape_, old_coord))]);
    }
    return devices;
  }

  std::vector<std::string> names_;
  Dims shape_;
  std::vector<index_t> devices_;
  bool iota_ = true;
  std::vector<std::pair<index_t, index_t>> by_rank_;  // (rank, position), when not iota
};

}  // namespace shardalg

template <>
struct std::hash<shardalg::DeviceMesh> {
  std::size_t operator()(const shardalg::DeviceMesh& mesh) const { return mesh.hash(); }
};
