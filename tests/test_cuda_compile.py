"""The CUDA kernels compile, for float and double, without a single warning.

This needs nvcc but no GPU: each .cu file of kernels/cuda is compiled to PTX
for sm_90 (the H100/H200 generation) with warnings turned into errors.  The
kernels are templates, and a template that is never instantiated is hardly
checked by a compiler, so each file is compiled through a small generated
wrapper that instantiates every kernel for float and double: exactly the list
of name expressions that the loader hands to CuPy at run time.

The files compile in parallel, one nvcc process each.  Where a GPU and CuPy
are present, the last test also builds every kernel the way the loader does at
run time (NVRTC); the numerical checks of the kernels are in tests/kernels.
"""
import ast
import importlib.util
import pathlib
import re
import shutil
import subprocess
import time

import pytest
from gpu_support import gpu_unavailable_reason

ROOT = pathlib.Path(__file__).resolve().parents[1]
CUDA_FOLDER = ROOT / "kernels" / "cuda"
CUDA_FILES = sorted(CUDA_FOLDER.glob("*.cu"))
NVCC_OPTIONS = ["-ptx", "-arch=sm_90", "--std=c++17", "-Werror", "all-warnings"]

requires_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")


def load_loader():
    """kernels/cuda/loader.py, loaded from its file.

    Importing it as deepbreadth.kernels.cuda.loader would run the package's
    __init__, which imports CuPy; the loader itself imports CuPy only to compile.
    """
    spec = importlib.util.spec_from_file_location("cuda_kernel_loader", CUDA_FOLDER / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loader = load_loader()


def wrapper_source(cuda_file):
    """A translation unit including `cuda_file` that instantiates all its kernels."""
    expressions = loader.name_expressions(cuda_file.read_text(encoding="utf-8"))
    lines = [f'#include "{cuda_file.name}"', "", "// Taking a kernel's address instantiates it."]
    lines.append("void* kernels_to_compile[] = {")
    lines += [f"    (void*)&{expression}," for expression in expressions]
    lines.append("};")
    return "\n".join(lines) + "\n"


def ptx_entry_names(ptx):
    """The (mangled) names of the kernels in a PTX file."""
    return re.findall(r"\.entry\s+(\w+)", ptx)


def test_every_cuda_file_declares_kernels():
    assert CUDA_FILES, f"no .cu files in {CUDA_FOLDER}"
    for cuda_file in CUDA_FILES:
        names = loader.template_kernel_names(cuda_file.read_text(encoding="utf-8"))
        assert names, f"{cuda_file.name}: no `template <typename T> __global__ void` kernel found"
        assert len(names) == len(set(names)), f"{cuda_file.name}: a kernel name repeats: {names}"


def test_run_time_source_has_its_headers_pasted_in():
    """What CuPy compiles is self-contained, so its disk cache sees header edits."""
    for cuda_file in CUDA_FILES:
        source = loader.source_with_local_includes(cuda_file.name)
        assert '#include "' not in source, f"{cuda_file.name}: a local #include is left"
        assert "DEEPBREADTH_COMMON_CUH" in source, f"{cuda_file.name}: common.cuh is not pasted in"


def kernels_launched_by(python_file):
    """(cuda file, kernel name) of every get_kernel(CUDA_FILE, "name", dtype) call."""
    tree = ast.parse(python_file.read_text(encoding="utf-8"))
    cuda_file = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "CUDA_FILE" for target in node.targets
        ):
            cuda_file = ast.literal_eval(node.value)
    launched = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_kernel":
            assert isinstance(node.args[0], ast.Name) and node.args[0].id == "CUDA_FILE", (
                f"{python_file.name}: get_kernel should name the module's CUDA_FILE"
            )
            launched.append((cuda_file, ast.literal_eval(node.args[1])))
    return launched


def test_python_wrappers_and_cuda_kernels_match():
    """Every kernel a wrapper asks for exists, and every kernel is asked for."""
    launched = set()
    for python_file in sorted(CUDA_FOLDER.glob("*.py")):
        launched.update(kernels_launched_by(python_file))
    defined = {
        (cuda_file.name, name)
        for cuda_file in CUDA_FILES
        for name in loader.template_kernel_names(cuda_file.read_text(encoding="utf-8"))
    }
    missing = sorted(launched - defined)
    assert not missing, f"asked for but not in any .cu file: {missing}"
    assert defined - launched == set(), f"never launched: {sorted(defined - launched)}"


def test_activation_codes_match_the_header():
    header = (CUDA_FOLDER / "common.cuh").read_text(encoding="utf-8")
    codes = {
        name.lower(): int(code)
        for name, code in re.findall(r"^#define ACTIVATION_(\w+) (\d+)$", header, re.MULTILINE)
    }
    assert codes == loader.ACTIVATION_CODES


def test_column_sum_block_shape_matches_the_kernel():
    """elementwise.py launches blocks of the shape elementwise.cu sizes its shared memory for."""
    source = (CUDA_FOLDER / "elementwise.cu").read_text(encoding="utf-8")
    wrapper = (CUDA_FOLDER / "elementwise.py").read_text(encoding="utf-8")
    for name in ("COLUMN_TILE", "ROW_LANES"):
        in_cuda = re.findall(rf"^#define {name} (\d+)$", source, re.MULTILINE)
        in_python = re.findall(rf"^{name} = (\d+)$", wrapper, re.MULTILINE)
        assert in_cuda and in_cuda == in_python, f"{name}: {in_cuda} in the .cu, {in_python} in the .py"


@requires_nvcc
def test_cuda_files_compile_without_warnings(tmp_path):
    started = time.perf_counter()
    processes = {}
    for cuda_file in CUDA_FILES:
        wrapper = tmp_path / f"compile_{cuda_file.stem}.cu"
        wrapper.write_text(wrapper_source(cuda_file), encoding="utf-8")
        command = [
            "nvcc", *NVCC_OPTIONS, "-I", str(CUDA_FOLDER),
            "-o", str(tmp_path / f"{cuda_file.stem}.ptx"), str(wrapper),
        ]
        processes[cuda_file] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    failures = []
    for cuda_file, process in processes.items():
        output, _ = process.communicate(timeout=600)
        if process.returncode != 0 or output.strip():
            failures.append(f"--- {cuda_file.name} (exit {process.returncode}) ---\n{output}")
    elapsed = time.perf_counter() - started
    print(f"compiled {len(CUDA_FILES)} CUDA files in {elapsed:.1f} s")
    assert not failures, "\n".join(failures)

    # Every kernel must be in the PTX twice, once per type: an instantiation
    # that went missing would only surface at run time, as a CuPy lookup error.
    for cuda_file in CUDA_FILES:
        entries = ptx_entry_names((tmp_path / f"{cuda_file.stem}.ptx").read_text(encoding="utf-8"))
        for name in loader.template_kernel_names(cuda_file.read_text(encoding="utf-8")):
            # Itanium mangling spells a name as its length then its characters.
            mangled = f"{len(name)}{name}I"
            count = sum(mangled in entry for entry in entries)
            assert count == 2, f"{cuda_file.name}: {name} is in the PTX {count} times, expected 2"


def test_every_kernel_loads_through_cupy():
    """On a GPU machine: NVRTC (not nvcc) compiles each file as the loader hands it over.

    A failure here shows the compiler's log for one file, which is clearer than
    the same error surfacing in every numerical test of that file's kernels.
    """
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"CUDA kernels not loaded: {reason}")
    import numpy as np

    from deepbreadth.kernels.cuda import loader as run_time_loader

    for cuda_file in CUDA_FILES:
        for name in loader.template_kernel_names(cuda_file.read_text(encoding="utf-8")):
            for dtype in (np.float32, np.float64):
                assert run_time_loader.get_kernel(cuda_file.name, name, dtype) is not None
