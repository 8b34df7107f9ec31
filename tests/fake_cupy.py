"""A stand-in for CuPy, to run the GPU code paths on a machine without a GPU.

`installed()` puts modules named `cupy` and `cupyx` into sys.modules, and
makes the NumPy reference kernels serve as the 'cuda' kernel set. The arrays
of this fake keep their values in NumPy arrays on the host, but behave like
CuPy's arrays where a host/device mix-up would show:

- their type lives in a module called 'cupy', so deepbreadth treats them as
  device arrays (`backend.is_gpu_array`), and `.get()` copies them to NumPy;
- `numpy.asarray(array)` raises TypeError, as it does for CuPy arrays;
- NumPy functions and ufuncs applied to them return device arrays (CuPy takes
  such calls over the same way), and a NumPy array mixed in raises TypeError;
- reductions return 0-d device arrays, not NumPy scalars;
- a 'cuda' kernel given a NumPy array raises TypeError (a real CUDA kernel
  cannot read host memory).

So a NumPy array that slips into device code fails here as it would on a GPU.
What the fake cannot find: a NumPy function that CuPy lacks, the dtype and
layout rules of the real CUDA kernels, and anything about speed.
"""
import contextlib
import importlib.machinery
import sys
import types

import numpy as np


class HostDeviceMixError(TypeError):
    """A NumPy (host) array was used where only device arrays can go."""


class ndarray:  # noqa: N801 - CuPy's name
    """A device array of the fake: a NumPy array behind CuPy's interface."""

    __module__ = "cupy"  # what deepbreadth.backend.is_gpu_array looks at
    __slots__ = ("_host",)
    __hash__ = None  # arrays are not hashable, as in NumPy and CuPy

    def __init__(self, host):
        self._host = host

    def get(self):
        """A NumPy copy of the values (CuPy's device-to-host copy)."""
        return self._host.copy()

    def __array__(self, dtype=None, copy=None):
        raise HostDeviceMixError(
            "a device array cannot become a NumPy array implicitly; copy it with .get()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _to_device(getattr(ufunc, method)(*_to_host(inputs), **_to_host(kwargs)))

    def __array_function__(self, function, types, args, kwargs):
        return _to_device(function(*_to_host(args), **_to_host(kwargs)))

    def __getattr__(self, name):
        if name.startswith("__"):
            # NumPy looks for __array_interface__ and the like: those would let it
            # read the host values, which a real device array does not allow.
            raise AttributeError(name)
        attribute = getattr(self._host, name)
        if not callable(attribute):
            return _to_device(attribute)

        def method(*args, **kwargs):
            return self._result(attribute(*_to_host(args), **_to_host(kwargs)))

        return method

    def _result(self, result):
        # An in-place method or operator returns the array itself, not a twin.
        return self if result is self._host else _to_device(result)

    def __getitem__(self, index):
        return _to_device(self._host[_index_on_host(index)])

    def __setitem__(self, index, value):
        # CuPy copies a NumPy value to the device for an assignment.
        value = value._host if isinstance(value, ndarray) else value
        self._host[_index_on_host(index)] = value

    def __len__(self):
        return len(self._host)

    def __iter__(self):
        return (_to_device(row) for row in self._host)

    def __bool__(self):
        return bool(self._host)

    def __float__(self):
        return float(self._host)

    def __int__(self):
        return int(self._host)

    def __format__(self, spec):
        return format(self._host, spec)

    def __repr__(self):
        return repr(self._host)

    def __str__(self):
        return str(self._host)

    def __reduce__(self):
        return (_from_host, (self._host,))


def _from_host(host):
    return ndarray(np.array(host))


def _operator(name):
    def operator(self, *args):
        return self._result(getattr(self._host, name)(*_to_host(args)))

    operator.__name__ = name
    return operator


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lshift", "rshift"):
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(ndarray, _form.format(_name), _operator(_form.format(_name)))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__", "__lt__", "__le__", "__gt__",
              "__ge__", "__eq__", "__ne__", "__divmod__", "__rdivmod__"):
    setattr(ndarray, _name, _operator(_name))


def _to_host(value):
    """Device arrays (also inside tuples, lists and dicts) as their host arrays; a
    NumPy array among them is a host/device mix-up."""
    if isinstance(value, ndarray):
        return value._host
    if isinstance(value, np.ndarray):
        raise HostDeviceMixError(
            f"a NumPy array of shape {value.shape} was mixed with device arrays; move it "
            "to the device first")
    if type(value) in (tuple, list):
        return type(value)(_to_host(item) for item in value)
    if type(value) is dict:
        return {key: _to_host(item) for key, item in value.items()}
    return value


def _index_on_host(index):
    """An index for the host array: CuPy accepts NumPy arrays and lists in an index."""
    if isinstance(index, ndarray):
        return index._host
    if type(index) is tuple:
        return tuple(part._host if isinstance(part, ndarray) else part for part in index)
    return index


def _to_device(value):
    """Host results as device arrays: arrays and NumPy scalars (CuPy's reductions give
    0-d arrays), also inside tuples and lists."""
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):
        return ndarray(np.asarray(value))
    if type(value) in (tuple, list):
        return type(value)(_to_device(item) for item in value)
    return value


# ----------------------------------------------------------------------------
# The modules: cupy, cupy.random, cupy.cuda, cupyx, cupyx.scipy.special
# ----------------------------------------------------------------------------
def asarray(value, dtype=None, order=None):
    """Copy host data to the device (no copy for a device array of the right dtype)."""
    if isinstance(value, ndarray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return ndarray(np.array(value, dtype=dtype, order=order or "K"))


def array(value, dtype=None, copy=True, order="K"):
    host = value._host if isinstance(value, ndarray) else value
    return ndarray(np.array(host, dtype=dtype, copy=copy, order=order))


def asnumpy(value):
    return value.get() if isinstance(value, ndarray) else np.asarray(value)


def get_array_module(*arrays):
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in arrays) else np


def _numpy_function(name):
    """cupy.<name> for every other name: NumPy's function, run on the host values."""
    value = getattr(np, name)
    if not callable(value) or isinstance(value, type):
        return value  # constants, dtypes and scalar types are shared with NumPy

    def function(*args, **kwargs):
        return _to_device(value(*_to_host(args), **_to_host(kwargs)))

    function.__name__ = name
    return function


class _Random:
    """cupy.random: draws made on the 'device' from a generator of its own."""

    def __init__(self):
        self._generator = np.random.default_rng()

    def seed(self, seed=None):
        self._generator = np.random.default_rng(seed)

    def random(self, size=None, dtype=float):
        return ndarray(np.asarray(self._generator.random(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return ndarray(np.asarray(self._generator.uniform(low, high, size)).astype(dtype))

    def standard_normal(self, size=None, dtype=float):
        return ndarray(np.asarray(self._generator.standard_normal(size, dtype=dtype)))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return ndarray(np.asarray(self._generator.normal(loc, scale, size)).astype(dtype))


class _NoDevice:
    """cupy.cuda: there is no device, so code that asks for one learns it (the GPU
    tests then skip their real-GPU half instead of taking the fake for a GPU)."""

    class runtime:  # noqa: N801 - CuPy's name
        @staticmethod
        def getDeviceCount():  # noqa: N802 - CuPy's name
            raise RuntimeError("the fake CuPy of the tests has no CUDA device")


def scatter_add(target, index, values):
    """cupyx.scatter_add: target[index] += values, repeated indices adding up."""
    np.add.at(target._host, _index_on_host(index), _to_host(values))


def _add_with_at():
    """cupy.add, with CuPy 13's cupy.add.at (what cupyx.scatter_add became)."""
    add = _numpy_function("add")
    add.at = scatter_add
    return add


def _erf(values):
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy is a test dependency
        import math

        erf = np.vectorize(math.erf, otypes=[values.dtype])
    return _to_device(erf(values._host))


def _module(name, **attributes):
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attributes)
    return module


class HostKernelSet:
    """The fake's 'cuda' kernel set: each kernel of `reference` run on the host
    values of device arrays, its results returned as device arrays."""

    def __init__(self, reference):
        self._reference = reference
        self.__name__ = "deepbreadth.kernels.cuda"

    def __getattr__(self, name):
        kernel = getattr(self._reference, name)

        def run(*args, **kwargs):
            try:
                host_args, host_kwargs = _to_host(args), _to_host(kwargs)
            except HostDeviceMixError as error:
                raise HostDeviceMixError(f"CUDA kernel {name}: {error}") from None
            return _to_device(kernel(*host_args, **host_kwargs))

        run.__name__ = name
        return run


@contextlib.contextmanager
def installed():
    """Within this block `import cupy` gives the fake, and device arrays run the
    reference kernels. Modules and kernel sets in place before are restored."""
    from deepbreadth import backend

    cupy = _module("cupy", ndarray=ndarray, asarray=asarray, array=array, asnumpy=asnumpy,
                   get_array_module=get_array_module, random=_Random(), cuda=_NoDevice,
                   add=_add_with_at(), __getattr__=_numpy_function)
    special = _module("cupyx.scipy.special", erf=_erf)
    scipy = _module("cupyx.scipy", special=special)
    cupyx = _module("cupyx", scatter_add=scatter_add, scipy=scipy)
    modules = {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": scipy, "cupyx.scipy.special": special}
    saved_modules = {name: sys.modules.get(name) for name in modules}
    saved_kernels = backend._loaded_kernel_sets.get("cuda")
    sys.modules.update(modules)
    backend._loaded_kernel_sets["cuda"] = HostKernelSet(backend.kernel_set("reference"))
    try:
        yield cupy
    finally:
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if saved_kernels is None:
            backend._loaded_kernel_sets.pop("cuda", None)
        else:
            backend._loaded_kernel_sets["cuda"] = saved_kernels
