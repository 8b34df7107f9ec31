"""Reading and writing the IDX file format (the format MNIST is distributed in).

An IDX file is a tiny header followed by the raw array, all big-endian:

    bytes 0-1   always zero
    byte  2     type code of the elements (0x08 = uint8, see ``TYPE_CODES``)
    byte  3     number of dimensions, n
    4 * n       the size of each dimension, as unsigned 32-bit integers
    the rest    the elements in C order, each big-endian

Read as one 32-bit number, the first four bytes are the "magic number": MNIST
images start with 0x00000803 (uint8, 3 dimensions) and labels with 0x00000801
(uint8, 1 dimension).

Files are often gzipped (``*-ubyte.gz``).  ``read_idx`` recognises gzip by its
own two-byte signature rather than by the file name, so a renamed file still
reads.  Every check names the file, what was expected and what was found: a
damaged download should say so, not surface later as a strange reshape error.
"""
import gzip
import io
import os
import struct
import zlib
from contextlib import ExitStack, contextmanager

import numpy as np

from deepbreadth.datasets.atomic import atomic_output

# The element types the format defines, by type code.  The '>' makes each one
# big-endian, as the bytes on disk are.
TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_SIGNATURE = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (or not the one the caller expected)."""


def read_idx(source, expected_ndim=None):
    """Read an IDX file, gzipped or plain, into a NumPy array.

    ``source`` is a path or a binary file object.  ``expected_ndim``, when given,
    is the number of dimensions the caller needs (3 for MNIST images, 1 for
    labels); a file with another number is rejected with the magic number that
    was expected and the one found.

    The result is a writable array in native byte order with the file's element
    type (uint8 for MNIST).  Raises ``IDXFormatError`` for a wrong magic number,
    an unknown type code, a header or data that is cut short, bytes left over
    after the data, or a damaged gzip stream.
    """
    with _open_idx_stream(source) as (stream, name):
        try:
            dtype, shape = _read_header(stream, name)
            _check_dimension_count(shape, dtype, expected_ndim, name)
            array = _read_elements(stream, dtype, shape, name)
            _check_nothing_left(stream, array.nbytes, name)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise IDXFormatError(
                f"{name}: the gzip stream is damaged or cut short ({error}); "
                "download or copy the file again"
            ) from error
    # Callers do arithmetic on the result, so hand back native byte order.
    return array.astype(array.dtype.newbyteorder("="), copy=False)


@contextmanager
def _open_idx_stream(source):
    """Yield ``(readable binary stream, name for messages)``, un-gzipping if needed."""
    with ExitStack() as opened:
        if isinstance(source, (str, os.PathLike)):
            name = os.fspath(source)
            stream = opened.enter_context(open(name, "rb"))
            # peek() looks at the first bytes without consuming them.
            first_bytes = stream.peek(2)[:2]
        else:
            name = getattr(source, "name", None) or "<file object>"
            # A general file object may not support peeking or seeking back, so
            # read it whole; BytesIO over bytes does not copy them.
            content = source.read()
            if not isinstance(content, bytes):
                raise TypeError(
                    f"{name}: read_idx needs a binary file object; open the file "
                    f"with mode 'rb' (read() returned {type(content).__name__})"
                )
            stream = io.BytesIO(content)
            first_bytes = content[:2]
        if first_bytes == GZIP_SIGNATURE:
            stream = opened.enter_context(gzip.GzipFile(fileobj=stream))
        yield stream, name


def _read_header(stream, name):
    """Read the magic number and the sizes; return ``(big-endian dtype, shape)``."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise IDXFormatError(
            f"{name}: too short for an IDX file: the 4-byte magic number was "
            f"expected, found {len(magic)} byte(s)"
        )
    zeros, type_code, ndim = magic[:2], magic[2], magic[3]
    if zeros != b"\x00\x00" or type_code not in TYPE_CODES:
        known = ", ".join(f"0x{code:02X} ({TYPE_CODES[code].name})" for code in TYPE_CODES)
        raise IDXFormatError(
            f"{name}: wrong magic number 0x{magic.hex().upper()}: an IDX file starts "
            f"with two zero bytes and a type code among {known} "
            "(0x00000803 for MNIST images, 0x00000801 for labels); "
            "is this an IDX file?"
        )
    if ndim == 0:
        raise IDXFormatError(
            f"{name}: the magic number 0x{magic.hex().upper()} declares 0 "
            "dimensions; an IDX file holds at least one"
        )
    size_bytes = stream.read(4 * ndim)
    if len(size_bytes) < 4 * ndim:
        raise IDXFormatError(
            f"{name}: header cut short: {ndim} dimension sizes "
            f"({4 * ndim} bytes) expected after the magic number, "
            f"found {len(size_bytes)} byte(s)"
        )
    shape = struct.unpack(f">{ndim}I", size_bytes)
    return TYPE_CODES[type_code], shape


def _check_dimension_count(shape, dtype, expected_ndim, name):
    """Reject a valid IDX file of the wrong rank (say, labels passed as images)."""
    if expected_ndim is None or len(shape) == expected_ndim:
        return
    type_code = _type_code_of(dtype)
    raise IDXFormatError(
        f"{name}: expected {expected_ndim} dimension(s) (magic number "
        f"0x{_magic_number(type_code, expected_ndim):08X}), found {len(shape)} "
        f"with shape {shape} (magic number "
        f"0x{_magic_number(type_code, len(shape)):08X})"
    )


def _read_elements(stream, dtype, shape, name):
    """Read exactly the elements the header promised, straight into a new array."""
    try:
        array = np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as error:
        raise IDXFormatError(
            f"{name}: the header declares shape {shape} of {dtype.name}, too large "
            f"to hold in memory ({error}); the header is probably damaged"
        ) from error
    # Reading into the array's own memory avoids a second full-size copy (the
    # MNIST training images are 47 MB uncompressed).
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < array.nbytes:
        count = stream.readinto(buffer[filled:])
        if not count:
            raise IDXFormatError(
                f"{name}: data cut short: shape {shape} of {dtype.name} needs "
                f"{array.nbytes} bytes after the header, found {filled}"
            )
        filled += count
    return array


def _check_nothing_left(stream, expected_bytes, name):
    """Bytes after the data mean the header and the data disagree."""
    first = stream.read(1)
    if not first:
        return
    extra = 1 + len(stream.read())
    raise IDXFormatError(
        f"{name}: {extra} extra byte(s) after the data: the header declares "
        f"{expected_bytes} data bytes, found {expected_bytes + extra}"
    )


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzipped when ``path`` ends in ``.gz``.

    The element type must be one the format defines (uint8, int8, int16, int32,
    float32, float64); other types are rejected rather than silently converted.
    The file appears atomically: the bytes go to a temporary file in the same
    directory, which then replaces ``path``, so a crash never leaves half a file.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    content = _idx_bytes(array, path)
    if path.endswith(".gz"):
        # mtime=0 makes the same array give byte-identical files.
        content = gzip.compress(content, compresslevel=6, mtime=0)
    with atomic_output(path) as file:
        file.write(content)


def _idx_bytes(array, path):
    """Header plus big-endian elements, as one ``bytes``."""
    type_code = _type_code_of(array.dtype, path)
    if array.ndim == 0 or array.ndim > 255:
        raise IDXFormatError(
            f"{path}: an IDX file holds 1 to 255 dimensions; the array has {array.ndim}"
        )
    if any(size >= 2**32 for size in array.shape):
        raise IDXFormatError(
            f"{path}: IDX stores each size in 32 bits; shape {array.shape} is too large"
        )
    header = struct.pack(
        f">I{array.ndim}I", _magic_number(type_code, array.ndim), *array.shape
    )
    elements = array.astype(TYPE_CODES[type_code], copy=False).tobytes(order="C")
    return header + elements


def _type_code_of(dtype, path=None):
    """The IDX type code for a NumPy dtype, whatever its byte order."""
    for code, idx_dtype in TYPE_CODES.items():
        if np.dtype(dtype).newbyteorder(">") == idx_dtype:
            return code
    supported = ", ".join(idx_dtype.name for idx_dtype in TYPE_CODES.values())
    raise IDXFormatError(
        f"{path}: IDX cannot store elements of type {np.dtype(dtype).name}; "
        f"it supports {supported}; convert the array first (e.g. .astype(np.float32))"
    )


def _magic_number(type_code, ndim):
    return (type_code << 8) | ndim
