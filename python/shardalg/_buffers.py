"""Arrays as raw memory for the C++ core: numpy arrays and torch tensors become
(address, bytes, dtype) triples without a copy, checked first (contiguous, writable where
written, an element type shardalg knows). The caller keeps the arrays alive while the core runs.
"""

import numpy

from ._shardalg import Error

# numpy's dtype names -> shardalg's (numpy has no bf16; fp8 and bf16 come through torch).
_NUMPY_TO_DTYPE = {"float64": "fp64", "int64": "int64", "float32": "fp32", "int32": "int32",
                   "float16": "fp16", "int8": "int8", "uint8": "bytes", "int16": "int16", "bool": "bool",
                   "complex64": "complex64", "complex128": "complex128"}
_DTYPE_TO_NUMPY = {v: k for k, v in _NUMPY_TO_DTYPE.items()}
# shardalg's dtypes -> the torch dtype each allocates as (torch.<name>), and back from
# str(torch dtype) ("torch.float32"); both fp8 formats read as fp8.
DTYPE_TO_TORCH = {"fp64": "float64", "int64": "int64", "fp32": "float32", "int32": "int32",
                  "bf16": "bfloat16", "fp16": "float16", "fp8": "float8_e4m3fn", "int8": "int8",
                  "bytes": "uint8", "int16": "int16", "bool": "bool", "complex64": "complex64",
                  "complex128": "complex128"}
_TORCH_TO_DTYPE = {f"torch.{name}": dtype for dtype, name in DTYPE_TO_TORCH.items()} | {"torch.float8_e5m2": "fp8"}


def is_torch_tensor(array):
    return type(array).__module__.startswith("torch") and hasattr(array, "data_ptr")


def raw(array, what, writable=False, device="cpu"):
    """(address, bytes, dtype) of a C-contiguous numpy array or torch tensor on `device`;
    Error naming `what` otherwise."""
    if isinstance(array, numpy.ndarray):
        dtype = _NUMPY_TO_DTYPE.get(array.dtype.name)
        if dtype is None:
            raise Error(f"{what}: numpy dtype {array.dtype.name} is not one shardalg moves "
                        f"({', '.join(sorted(_NUMPY_TO_DTYPE))}; bf16 and fp8 through torch)")
        if not array.flags.c_contiguous:
            raise Error(f"{what}: the array is not C-contiguous (strides {array.strides}); pass numpy.ascontiguousarray(...)")
        if writable and not array.flags.writeable:
            raise Error(f"{what}: the array is read-only and would be written")
        return (array.ctypes.data, array.nbytes, dtype)
    if is_torch_tensor(array):
        dtype = _TORCH_TO_DTYPE.get(str(array.dtype))
        if dtype is None:
            raise Error(f"{what}: torch dtype {array.dtype} is not one shardalg moves")
        if array.device.type != device:
            raise Error(f"{what}: the tensor is on {array.device}; this executor needs {device} tensors")
        if not array.is_contiguous():
            raise Error(f"{what}: the tensor is not contiguous (strides {tuple(array.stride())}); pass .contiguous()")
        if writable and array.requires_grad:
            raise Error(f"{what}: the tensor requires grad and would be written in place; pass .detach()")
        return (array.data_ptr(), array.numel() * array.element_size(), dtype)
    raise Error(f"{what}: {type(array).__name__} is neither a numpy array nor a torch tensor")


def resolve_like(like):
    """The array library to allocate with: numpy (default) or torch, given as the module or its name."""
    name = like if isinstance(like, str) else getattr(like, "__name__", None)
    if name in (None, "numpy"):
        return numpy
    if name == "torch":
        import torch
        return torch
    raise Error(f"like={like!r}: allocate with numpy or torch")


def zeros(shape, dtype, like, what):
    """Zeroed C-contiguous array of a shardalg dtype, from numpy or torch."""
    if like is numpy:
        name = _DTYPE_TO_NUMPY.get(dtype)
        if name is None:
            raise Error(f"{what} is {dtype}, which numpy has no type for: allocate with like=torch, "
                        f"or lay out the model with ModelSpec.with_dtype('fp32')")
        return numpy.zeros(shape, dtype=name)
    torch_dtype = getattr(like, DTYPE_TO_TORCH[dtype], None)
    if torch_dtype is None:
        raise Error(f"{what} is {dtype}, which this torch ({like.__version__}) has no type for")
    return like.zeros(tuple(shape), dtype=torch_dtype)


def like_of(arrays):
    """torch when any of the arrays is a torch tensor, numpy otherwise."""
    for array in arrays:
        if is_torch_tensor(array):
            import torch
            return torch
    return numpy
