"""The shipped type stubs describe the module as built: the stub is what python/tools/stubgen.py
writes from it, and every public name of shardalg and shardalg.torch is declared."""

import ast
import inspect
import os
import subprocess
import sys

import shardalg

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "shardalg")
STUBGEN = os.path.join(os.path.dirname(__file__), "..", "tools", "stubgen.py")


def declared(path):
    tree = ast.parse(open(path).read())
    names = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    names |= {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)}
    return tree, names


def test_stub_is_the_generators_output():
    generated = subprocess.run([sys.executable, STUBGEN], capture_output=True, text=True, check=True).stdout
    shipped = open(os.path.join(PACKAGE, "__init__.pyi")).read()
    assert generated == shipped, "python/shardalg/__init__.pyi is stale: regenerate it with python/tools/stubgen.py"


def test_every_public_name_is_declared():
    _, names = declared(os.path.join(PACKAGE, "__init__.pyi"))
    public = {n for n, v in vars(shardalg).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public - names == set()
    assert names - public - {"__version__"} == set()


def test_every_public_member_of_a_class_is_declared():
    tree, _ = declared(os.path.join(PACKAGE, "__init__.pyi"))
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not hasattr(shardalg, node.name):
            continue
        cls = getattr(shardalg, node.name)
        if issubclass(cls, Exception):
            continue
        in_stub = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
        in_stub |= {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
        public = {n for n in cls.__dict__ if not n.startswith("_")}
        assert public - in_stub == set(), f"{node.name}: {sorted(public - in_stub)} missing from the stub"


def test_torch_stub_declares_reshard():
    import shardalg.torch as module
    _, names = declared(os.path.join(PACKAGE, "torch.pyi"))
    public = {n for n, v in vars(module).items() if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == module.__name__}
    assert public <= names and "reshard" in names
