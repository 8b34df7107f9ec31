"""Writing a file so that it is either complete or absent, never half-written."""
import os
import uuid
from contextlib import contextmanager


@contextmanager
def atomic_output(path):
    """Open a temporary sibling of ``path`` for binary writing; on success rename it.

    If the ``with`` block raises (a failed download, a checksum mismatch, a full
    disk), the temporary file is deleted and ``path`` is left as it was.  The
    rename is atomic because the temporary file lies in the same directory, so
    no reader ever sees a partial file at ``path``.
    """
    path = os.fspath(path)
    directory, filename = os.path.split(os.path.abspath(path))
    # A unique hidden name, so that two processes writing the same file at once
    # do not write into each other's temporary file.
    temporary_path = os.path.join(directory, f".{filename}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary_path, "xb") as file:
            yield file
        os.replace(temporary_path, path)
    except BaseException:
        if os.path.exists(temporary_path):
            os.unlink(temporary_path)
        raise
