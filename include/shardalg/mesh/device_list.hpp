// The rank held at each position of a mesh, and XLA TileAssignment's compact text form for it
// (docs/semantics.md section 4).
//
// `[dims]<=[reshape_dims]T(perm)` means arange(N).reshape(reshape_dims).transpose(perm)
// .reshape(dims); `T(...)` is left out for the identity. Example: `[2,2]<=[2,2]T(1,0)` is the
// ranks [[0,2],[1,3]]. An arbitrary list is written `[dims]:[r0,r1,...]`.
#pragma once

#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "shardalg/core/dims.hpp"
#include "shardalg/core/rank_limit.hpp"
#include "shardalg/core/text_scanner.hpp"

namespace shardalg {

// arange(N).reshape(reshape_dims).transpose(perm), as a compact description of a permutation.
struct IotaTranspose {
  Dims reshape_dims;
  Dims perm;

  // The devices in row-major order of the transposed array.
  std::vector<index_t> devices() const {
    index_t n = volume(reshape_dims);
    std::size_t k = reshape_dims.size();
    Dims strides(k, 1);  // row-major strides of reshape_dims
    for (std::size_t i = k; i-- > 1;) strides[i - 1] = strides[i] * reshape_dims[i];
    Dims out_shape, out_strides;
    for (std::size_t i = 0; i < k; ++i) {
      out_shape.push_back(reshape_dims[static_cast<std::size_t>(perm[i])]);
      out_strides.push_back(strides[static_cast<std::size_t>(perm[i])]);
    }
    std::vector<index_t> result(static_cast<std::size_t>(n));
    Dims coord(k, 0);
    for (index_t i = 0; i < n; ++i) {
      index_t device = 0;
      for (std::size_t a = 0; a < k; ++a) device += coord[a] * out_strides[a];
      result[static_cast<std::size_t>(i)] = device;
      for (std::size_t a = k; a-- > 0;) {
        if (++coord[a] < out_shape[a]) break;
        coord[a] = 0;
      }
    }
    return result;
  }

  // XLA's canonical form: size-1 dims dropped, dims that stay adjacent under perm merged.
  // Examples: [2,2]T(0,1) -> [4]; [2,1,3]T(2,1,0) -> [2,3]T(1,0); [2,3,4]T(0,2,1) stays.
  IotaTranspose canonical() const {
    // Drop size-1 dims, renumbering perm.
    Dims kept_dims, kept_perm, new_index(reshape_dims.size(), -1);
    for (std::size_t i = 0; i < reshape_dims.size(); ++i)
      if (reshape_dims[i] != 1) {
        new_index[i] = static_cast<index_t>(kept_dims.size());
        kept_dims.push_back(reshape_dims[i]);
      }
    for (index_t p : perm)
      if (new_index[static_cast<std::size_t>(p)] >= 0) kept_perm.push_back(new_index[static_cast<std::size_t>(p)]);
    // Merge runs perm[i], perm[i]+1, ... that are consecutive in the output order.
    std::vector<Dims> groups;  // source dims merged into each output dim
    for (index_t p : kept_perm) {
      if (!groups.empty() && groups.back().back() + 1 == p) groups.back().push_back(p);
      else groups.push_back(Dims{p});
    }
    // The merged source dims in source order.
    std::vector<std::size_t> order(groups.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return groups[a][0] < groups[b][0]; });
    IotaTranspose result;
    Dims rank_of_group(groups.size(), 0);
    for (std::size_t s = 0; s < order.size(); ++s) {
      index_t size = 1;
      for (index_t d : groups[order[s]]) size *= kept_dims[static_cast<std::size_t>(d)];
      result.reshape_dims.push_back(size);
      rank_of_group[order[s]] = static_cast<index_t>(s);
    }
    for (std::size_t g = 0; g < groups.size(); ++g) result.perm.push_back(rank_of_group[g]);
    if (result.reshape_dims.empty()) {  // every dim had size 1
      result.reshape_dims.push_back(1);
      result.perm.push_back(0);
    }
    return result;
  }

  bool is_identity() const {
    for (std::size_t i = 0; i < perm.size(); ++i)
      if (perm[i] != static_cast<index_t>(i)) return false;
    return true;
  }

  // Recovers the compact form of a device list, or nothing when the list is not a transposed
  // iota (then it must be written out). Linear time: the innermost axis is the longest run of
  // equal steps from position 0, the next one steps over whole blocks of it, and so on.
  static std::optional<IotaTranspose> find(const std::vector<index_t>& devices) {
    index_t n = static_cast<index_t>(devices.size());
    if (n == 0 || devices[0] != 0) return std::nullopt;
    Dims sizes, strides;  // output axes, innermost first
    index_t block = 1;
    while (block < n) {
      index_t stride = devices[static_cast<std::size_t>(block)];
      if (stride <= 0) return std::nullopt;
      index_t run = 1;  // longest run of equal steps; the axis size must also divide n / block
      while (block * run < n && devices[static_cast<std::size_t>(block * run)] == run * stride) ++run;
      index_t size = run;
      while ((n / block) % size != 0) --size;
      if (size == 1) return std::nullopt;
      sizes.push_back(size);
      strides.push_back(stride);
      block *= size;
    }
    // Strides sorted ascending must be those of a row-major array: 1, s0, s0*s1, ...
    std::vector<std::size_t> by_stride(sizes.size());
    std::iota(by_stride.begin(), by_stride.end(), std::size_t{0});
    std::sort(by_stride.begin(), by_stride.end(), [&](auto a, auto b) { return strides[a] < strides[b]; });
    index_t expected = 1;
    for (std::size_t a : by_stride) {
      if (strides[a] != expected) return std::nullopt;
      expected *= sizes[a];
    }
    // Source dims: largest stride first. Output dims: outermost first.
    IotaTranspose result;
    Dims source_index(sizes.size(), 0);
    for (std::size_t s = 0; s < by_stride.size(); ++s) {
      std::size_t axis = by_stride[by_stride.size() - 1 - s];
      result.reshape_dims.push_back(sizes[axis]);
      source_index[axis] = static_cast<index_t>(s);
    }
    for (std::size_t a = sizes.size(); a-- > 0;) result.perm.push_back(source_index[a]);
    if (result.reshape_dims.empty()) {  // n == 1
      result.reshape_dims.push_back(1);
      result.perm.push_back(0);
    }
    if (result.devices() != devices) return std::nullopt;
    return result.canonical();
  }
};

// A parsed device-list text: the dims written before "<=" or ":" and the devices.
struct DeviceListText {
  Dims dims;
  std::vector<index_t> devices;
};

// Reads `[dims]<=[reshape_dims]T(perm)`, `[dims]<=[reshape_dims]`, `[dims]:[r0,...]`, or a bare
// list `[r0,r1,...]` / `r0,r1,...` (dims = [count]).
inline DeviceListText parse_device_list(std::string_view text) {
  detail::Scanner in(text, "device list");
  auto read_list = [&in]() {
    Dims values;
    in.expect("[");
    if (!in.accept("]")) {
      do values.push_back(in.integer());
      while (in.accept(","));
      in.expect("]");
    }
    return values;
  };
  DeviceListText result;
  bool bracketed = in.peek() == '[';
  Dims first = bracketed ? read_list() : Dims{};
  if (!bracketed) {
    do first.push_back(in.integer());
    while (in.accept(","));
  }
  if (in.accept("<=")) {
    IotaTranspose iota{read_list(), {}};
    if (in.accept("T")) {
      in.expect("(");
      do iota.perm.push_back(in.integer());
      while (in.accept(","));
      in.expect(")");
    } else {
      for (std::size_t i = 0; i < iota.reshape_dims.size(); ++i) iota.perm.push_back(static_cast<index_t>(i));
    }
    in.expect_end();
    for (index_t d : iota.reshape_dims)
      if (d <= 0) detail::fail<ParseError>("device list '", text, "': reshape dim ", d, " must be positive");
    if (iota.perm.size() != iota.reshape_dims.size())
      detail::fail<ParseError>("device list '", text, "': transpose ", iota.perm, " does not match reshape dims ",
                               iota.reshape_dims);
    Dims seen(iota.perm.size(), 0);
    for (index_t p : iota.perm) {
      if (p < 0 || p >= static_cast<index_t>(iota.perm.size()) || seen[static_cast<std::size_t>(p)]++)
        detail::fail<ParseError>("device list '", text, "': transpose ", iota.perm, " is not a permutation");
    }
    for (index_t d : first)
      if (d <= 0) detail::fail<ParseError>("device list '", text, "': dim ", d, " must be positive");
    if (volume(first) != volume(iota.reshape_dims))
      detail::fail<ParseError>("device list '", text, "': dims ", first, " hold ", volume(first),
                               " devices but reshape dims ", iota.reshape_dims, " hold ", volume(iota.reshape_dims));
    if (volume(first) > max_ranks)
      detail::fail<ParseError>("device list '", text, "': ", volume(first), " devices, over the limit ", max_ranks);
    result.dims = first;
    result.devices = iota.devices();
    return result;
  }
  if (bracketed && in.accept(":")) {
    result.dims = first;
    Dims values = read_list();
    result.devices.assign(values.begin(), values.end());
    in.expect_end();
    if (volume(result.dims) != static_cast<index_t>(result.devices.size()))
      detail::fail<ParseError>("device list '", text, "': dims ", result.dims, " need ", volume(result.dims),
                               " devices, got ", result.devices.size());
    return result;
  }
  in.expect_end();
  result.devices.assign(first.begin(), first.end());
  result.dims = Dims{static_cast<index_t>(result.devices.size())};
  return result;
}

// Prints the compact form when the devices are a transposed iota, else `[dims]:[r0,...]`.
inline std::string format_device_list(const Dims& dims, const std::vector<index_t>& devices) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) out << (i ? "," : "") << dims[i];
  out << ']';
  if (auto iota = IotaTranspose::find(devices)) {
    out << "<=[";
    for (std::size_t i = 0; i < iota->reshape_dims.size(); ++i) out << (i ? "," : "") << iota->reshape_dims[i];
    out << ']';
    if (!iota->is_identity()) {
      out << "T(";
      for (std::size_t i = 0; i < iota->perm.size(); ++i) out << (i ? "," : "") << iota->perm[i];
      out << ')';
    }
    return out.str();
  }
  out << ":[";
  for (std::size_t i = 0; i < devices.size(); ++i) out << (i ? "," : "") << devices[i];
  out << ']';
  return out.str();
}

}  // namespace shardalg
