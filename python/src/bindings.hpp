// What every binding source shares: pybind11, the library, Dims as Python tuples, and the
// registration functions of each binding source.
#pragma once

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "shardalg/shardalg.hpp"

namespace py = pybind11;

// Dims <-> Python: any sequence of ints in, a tuple of ints out (shapes, offsets, coordinates).
namespace pybind11::detail {
template <>
struct type_caster<shardalg::Dims> {
  PYBIND11_TYPE_CASTER(shardalg::Dims, const_name("tuple[int, ...]"));

  bool load(handle source, bool) {
    if (!isinstance<sequence>(source) || isinstance<str>(source) || isinstance<bytes>(source)) return false;
    value = shardalg::Dims();
    for (handle item : reinterpret_borrow<sequence>(source)) {
      if (!PyLong_Check(item.ptr()) && !PyIndex_Check(item.ptr())) return false;
      value.push_back(item.cast<shardalg::index_t>());
    }
    return true;
  }
  static handle cast(const shardalg::Dims& dims, return_value_policy, handle) {
    pybind11::tuple out(dims.size());
    for (std::size_t i = 0; i < dims.size(); ++i) out[i] = pybind11::int_(dims[i]);
    return out.release();
  }
};
}  // namespace pybind11::detail

namespace shardalg::python {

// Python's repr of a string: single-quoted, escaped (reprs that eval back).
inline std::string repr_of(std::string_view text) { return py::repr(py::str(std::string(text))).cast<std::string>(); }

void bind_layouts(py::module_& m);
void bind_models(py::module_& m);
void bind_plans(py::module_& m);
void bind_execution(py::module_& m);
void bind_checkpoints(py::module_& m);

// A box as the torch executor walks it: (tensor, buffer, byte offset, row shape, row byte
// strides, row bytes, element bytes, contributors).
inline py::tuple box_tuple(const BoxRows& box) {
  return py::make_tuple(box.tensor, box.buffer, box.base, box.row_shape, box.row_strides, box.row_bytes, box.element_bytes, box.contributors);
}

// Messages as (peer, stream bytes, [box tuples], [stream offsets]).
inline py::list messages_list(const std::vector<Message>& messages) {
  py::list out;
  for (const Message& m : messages) {
    py::list boxes;
    for (const BoxRows& box : m.boxes) boxes.append(box_tuple(box));
    out.append(py::make_tuple(m.peer, m.bytes, boxes, m.starts));
  }
  return out;
}

}  // namespace shardalg::python
