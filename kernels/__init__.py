"""Raw array kernels, one set per device: see docs/KERNELS.md for the contract.

``reference`` is plain NumPy (the readable specification), ``cpu`` is Numba,
``cuda`` is CUDA C loaded through CuPy.  This package knows arrays only.
"""
