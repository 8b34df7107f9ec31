"""Whether a real GPU is here: shared by the conftests and the CUDA tests."""


def gpu_unavailable_reason():
    """Why the cupy backend cannot run here, or None when CuPy sees a GPU."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as error:  # the CUDA driver itself is missing
        return f"no usable CUDA device ({error})"
    return None
