// The extension module shardalg._shardalg. Every shardalg::Error becomes shardalg.Error (a
// ValueError), its message naming the bad value; ParseError (text that cannot be read) and IntegerOverflowError (a size past int64) subclass it.
#include "bindings.hpp"

PYBIND11_MODULE(_shardalg, m) {
  using namespace shardalg;
  m.doc() = "shardalg: the sharding and placement algebra of distributed training (C++ core).";
  static py::exception<Error> error(m, "Error", PyExc_ValueError);
  static py::exception<ParseError> parse_error(m, "ParseError", error.ptr());
  static py::exception<OverflowError> overflow_error(m, "IntegerOverflowError", error.ptr());
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const ParseError& e) {
      parse_error(e.what());
    } catch (const OverflowError& e) {
      overflow_error(e.what());
    } catch (const Error& e) {
      error(e.what());
    }
  });
  m.def("dtype_names", &dtype_names, "The element types shardalg knows: fp64, int64, fp32, int32, bf16, fp16, fp8, int8, bytes, int16, bool, complex64, complex128.");
  m.def("element_bytes", [](std::string_view dtype) { return element_bytes(parse_dtype(dtype)); }, py::arg("dtype"));
  python::bind_layouts(m);
  python::bind_models(m);
  python::bind_plans(m);
  python::bind_execution(m);
  python::bind_checkpoints(m);
}
