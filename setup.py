"""Installation script for deepbreadth.

The array kernels live in the top-level folder ``kernels/`` because they are a
layer of their own (they know arrays, never Tensors).  They are installed as the
subpackage ``deepbreadth.kernels`` through ``package_dir``, so that no generic
top-level package named ``kernels`` lands in a user's site-packages.
"""
from setuptools import setup

PACKAGES = [
    "deepbreadth",
    "deepbreadth.functional",
    "deepbreadth.layers",
    "deepbreadth.datasets",
    "deepbreadth.keras",
    "deepbreadth.kernels",
    "deepbreadth.kernels.reference",
    "deepbreadth.kernels.cpu",
    "deepbreadth.kernels.cuda",
]

setup(
    name="deepbreadth",
    version="0.1.0",
    description="A small, readable deep-learning engine: autograd, layers, "
    "Keras-compatible models, Numba and CUDA kernels.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={"deepbreadth.kernels": "kernels"},
    package_data={
        "deepbreadth.kernels.cuda": ["*.cu", "*.cuh"],
        "deepbreadth.datasets": ["data/*.gz", "data/*.txt", "data/*.md"],
    },
    install_requires=["numpy>=1.24", "numba>=0.59"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        "bench": ["torch", "threadpoolctl"],
        # Lets the CPU kernels hold BLAS to one thread during a training step
        # (kernels/cpu/threads.py): much faster on a busy machine.
        "threads": ["threadpoolctl"],
        "cuda": ["cupy-cuda13x>=13"],
        "plot": ["matplotlib"],
        "viz": ["graphviz"],
    },
)
