"""Every kernel set implements the contract of docs/KERNELS.md, name for name.

The contract's code blocks list each kernel as `name(param, ...)` under a
heading naming its module (`## conv.py`).  These tests read the contract and
the source of each set with `ast`, without importing anything, so they run
where the set's own dependencies are missing (CuPy and a GPU for `cuda`):
- each contract kernel is a top-level function of `kernels/<set>/<module>.py`
  (defined there or imported into it) with exactly the contract's parameter
  names, in order;
- `kernels/<set>/__init__.py` imports it from that module and lists it in
  `__all__`.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "KERNELS.md"
KERNEL_SETS = ("reference", "cpu", "cuda")

_MODULE_HEADING = re.compile(r"^## (\w+)\.py\b", re.MULTILINE)
_CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# A signature starts a line: `name(` then parameters up to `)`, maybe over lines.
_SIGNATURE = re.compile(r"^(\w+)\(([^)]*)\)", re.MULTILINE)


def read_contract():
    """{module: {kernel: [parameter names]}} from the code blocks of docs/KERNELS.md."""
    text = CONTRACT.read_text(encoding="utf-8")
    headings = list(_MODULE_HEADING.finditer(text))
    contract = {}
    for heading, following in zip(headings, headings[1:] + [None]):
        section = text[heading.end(): following.start() if following else len(text)]
        kernels = {}
        for block in _CODE_BLOCK.findall(section):
            for name, parameters in _SIGNATURE.findall(block):
                # `name=default` documents a keyword with its default: the name counts.
                kernels[name] = [
                    p.split("=")[0].strip() for p in parameters.split(",") if p.strip()
                ]
        contract[heading.group(1)] = kernels
    return contract


CONTRACT_KERNELS = read_contract()


def parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def top_level_functions(tree):
    """{name: [positional parameter names]} of the functions a module defines."""
    return {
        node.name: [arg.arg for arg in node.args.posonlyargs + node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def function_parameters(path, name):
    """Positional parameter names of function `name` as seen from module `path`.

    Follows relative imports (`from ..reference.pool import name`), so that a
    set may take a kernel from another set.  None when there is no such function.
    """
    tree = parse(path)
    functions = top_level_functions(tree)
    if name in functions:
        return functions[name]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    package = path.parents[node.level - 1]
                    source = package.joinpath(*(node.module or "").split(".")).with_suffix(".py")
                    return function_parameters(source, alias.name) if source.exists() else None
    return None


def imported_names(tree):
    """{name: module} for every `from .module import name` at the top of a package."""
    return {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
    }


def declared_all(tree):
    """The strings listed in `__all__`, or None when there is no `__all__`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return None


def test_contract_is_read():
    """Guards the parsing: a reworded contract must not make the tests below vacuous."""
    assert set(CONTRACT_KERNELS) == {"conv", "pool", "rnn", "loss", "dense", "elementwise", "optim"}
    assert CONTRACT_KERNELS["conv"]["conv2d_forward"] == ["x", "w", "stride", "padding", "dilation"]
    assert CONTRACT_KERNELS["rnn"]["lstm_backward"][-3:] == [
        "activation", "recurrent_activation", "need_grad_x"]
    assert sum(len(kernels) for kernels in CONTRACT_KERNELS.values()) == 48


@pytest.mark.parametrize("module", sorted(CONTRACT_KERNELS))
@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
def test_module_defines_contract_functions(kernel_set, module):
    path = ROOT / "kernels" / kernel_set / f"{module}.py"
    assert path.exists(), f"{kernel_set} set: {path.relative_to(ROOT)} is missing"
    problems = []
    for name, parameters in CONTRACT_KERNELS[module].items():
        found = function_parameters(path, name)
        if found is None:
            problems.append(f"{name} is not defined")
        elif found != parameters:
            problems.append(f"{name}({', '.join(found)}) should be {name}({', '.join(parameters)})")
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("kernel_set", KERNEL_SETS)
def test_package_exports_contract_functions(kernel_set):
    path = ROOT / "kernels" / kernel_set / "__init__.py"
    tree = parse(path)
    imports = imported_names(tree)
    exported = declared_all(tree)
    assert exported is not None, f"{path.relative_to(ROOT)} has no __all__"
    problems = []
    for module, kernels in CONTRACT_KERNELS.items():
        for name in kernels:
            if imports.get(name) != module:
                problems.append(f"{name} is not imported from .{module}")
            if name not in exported:
                problems.append(f"{name} is not in __all__")
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)
