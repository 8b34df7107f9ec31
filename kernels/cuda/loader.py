"""Compiling the .cu files of this folder, launching their kernels.

Every kernel in a .cu file is a ``template <typename T> __global__ void name(...)``.
The first time a kernel of a file is asked for, the whole file is compiled once
by CuPy (NVRTC) for both ``float`` and ``double`` and kept in ``_compiled_files``;
CuPy also caches the binary on disk, so later processes skip the compiler.
Nothing is compiled at import time.

This module imports CuPy only inside the functions that need it, so that
tests without a GPU can load it to read the kernel names out of the .cu files.
"""
import functools
import pathlib
import re

import numpy as np

KERNEL_FOLDER = pathlib.Path(__file__).resolve().parent
COMPILE_OPTIONS = ("--std=c++17",)

# The C++ type that each supported dtype is compiled as.
C_TYPE_OF_DTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

# Activation names and their integer codes: must match the ACTIVATION_* macros
# in common.cuh.
ACTIVATION_CODES = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "hard_sigmoid": 4}

# A block of 256 threads keeps every multiprocessor busy with several blocks;
# kernels loop grid-stride, so capping the block count loses no elements.
THREADS_PER_BLOCK = 256
MAX_BLOCKS = 65535

_TEMPLATE_KERNEL = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(")
_LOCAL_INCLUDE = re.compile(r'^#include\s+"([^"]+)"[ \t]*$', re.MULTILINE)

# Files whose kernels run as cooperative launches: every block of the grid is
# resident at once, so a kernel may wait at a grid-wide barrier (grid.sync()).
COOPERATIVE_FILES = frozenset({"rnn_sequence.cu"})

_compiled_files = {}
# (file name, kernel name, dtype) -> the compiled kernel: see get_kernel.
_kernels = {}


# ----------------------------------------------------------------------------
# Reading the sources
# ----------------------------------------------------------------------------
def template_kernel_names(source):
    """Names of the ``template <typename T> __global__`` kernels in a CUDA source."""
    return _TEMPLATE_KERNEL.findall(source)


def name_expressions(source):
    """Every kernel of the source instantiated for every supported type: 'name<float>'."""
    return [
        f"{name}<{c_type}>"
        for name in template_kernel_names(source)
        for c_type in C_TYPE_OF_DTYPE.values()
    ]


def source_with_local_includes(file_name):
    """The text of a file of this folder with each ``#include "..."`` pasted in.

    CuPy's disk cache is keyed by a hash of the source text and never looks into
    included files: were headers left as #include, editing common.cuh would keep
    running the old binaries.  Pasting them in puts them into the hash.
    """
    text = (KERNEL_FOLDER / file_name).read_text(encoding="utf-8")
    return _LOCAL_INCLUDE.sub(lambda match: source_with_local_includes(match.group(1)), text)


# ----------------------------------------------------------------------------
# Compiling and fetching kernels
# ----------------------------------------------------------------------------
def c_type_of(dtype):
    """'float' or 'double' for a NumPy/CuPy dtype; ValueError for anything else."""
    dtype = np.dtype(dtype)
    if dtype not in C_TYPE_OF_DTYPE:
        raise ValueError(f"CUDA kernels work on float32 and float64 arrays, got {dtype}")
    return C_TYPE_OF_DTYPE[dtype]


def _compiled_file(file_name):
    module = _compiled_files.get(file_name)
    if module is None:
        import cupy

        source = source_with_local_includes(file_name)
        module = cupy.RawModule(
            code=source, options=COMPILE_OPTIONS, name_expressions=name_expressions(source),
            enable_cooperative_groups=file_name in COOPERATIVE_FILES,
        )
        _compiled_files[file_name] = module
    return module


def get_kernel(file_name, kernel_name, dtype):
    """The kernel ``kernel_name`` of ``file_name`` compiled for ``dtype``.

    Every launch asks for its kernel, so the answer is kept: after the first
    call this is one dict look-up instead of RawModule.get_function (1.6 us).
    The RawKernel it returns loads itself on whichever device is current.
    """
    key = (file_name, kernel_name, dtype)
    kernel = _kernels.get(key)
    if kernel is None:
        kernel = _compiled_file(file_name).get_function(f"{kernel_name}<{c_type_of(dtype)}>")
        _kernels[key] = kernel
    return kernel


# ----------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------
def launch_over_elements(kernel, count, args):
    """Launch a grid-stride kernel with enough threads for ``count`` elements."""
    if count == 0:
        return  # a grid of zero blocks is a launch error
    blocks = min((count + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, MAX_BLOCKS)
    kernel((blocks,), (THREADS_PER_BLOCK,), args)


def threads_per_row(row_length):
    """Block size for one-block-per-row kernels: whole warps, no more than needed."""
    warps = (row_length + 31) // 32
    return 32 * min(max(warps, 1), THREADS_PER_BLOCK // 32)


def launch_over_rows(kernel, rows, row_length, args):
    """Launch one block per row (the kernel loops over rows if blocks are capped)."""
    if rows == 0:
        return
    kernel((min(rows, MAX_BLOCKS),), (threads_per_row(row_length),), args)


# ----------------------------------------------------------------------------
# Kernel arguments: the exact C types the kernels declare
# ----------------------------------------------------------------------------
def index(value):
    """A size or index, passed as the kernels' ``Index`` (long long)."""
    return np.int64(value)


@functools.lru_cache(maxsize=256)
def indices(values):
    """A tuple of sizes as ``Index`` arguments.  Kept: a layer launches its
    convolution and pooling kernels with the same dozen sizes every step."""
    return tuple(index(value) for value in values)


def activation_code(name):
    """The ``int`` code of an activation name; ValueError naming the allowed names."""
    if name not in ACTIVATION_CODES:
        allowed = ", ".join(repr(known) for known in ACTIVATION_CODES)
        raise ValueError(f"unknown activation {name!r}; allowed names are {allowed}")
    return np.int32(ACTIVATION_CODES[name])


def scalar(value, dtype):
    """A Python number as the kernel's ``T``: float32 kernels must not get a double."""
    return np.dtype(dtype).type(value)


def float_dtype(array):
    """The dtype of a float array; ValueError for anything but float32/float64."""
    c_type_of(array.dtype)
    return array.dtype


def check_shape(name, array, expected):
    """ValueError unless array.shape == expected: kernels trust shapes blindly."""
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(array.shape)}, expected {tuple(expected)}")


def contiguous(array, dtype=None):
    """A C-contiguous CuPy array (a copy only when needed), as raw pointers need."""
    import cupy

    # The usual case, a contiguous device array of the right dtype, is passed
    # through after reading two attributes: the conversion below costs three
    # CuPy calls even when it has nothing to do.
    if (isinstance(array, cupy.ndarray) and array.flags.c_contiguous
            and (dtype is None or array.dtype == dtype)):
        return array
    # asarray first: ascontiguousarray accepts CuPy arrays only.  The reshape
    # undoes ascontiguousarray's habit of turning a 0-d array into shape (1,).
    array = cupy.asarray(array)
    return cupy.ascontiguousarray(array, dtype=dtype).reshape(array.shape)


def contiguous_ids(array):
    """Integer labels or ids as contiguous int64, the ``long long`` the kernels read."""
    return contiguous(array, dtype=np.int64)
