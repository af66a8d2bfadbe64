"""Type stubs (stubs/microtetherdb/*.pyi) instead of docstrings.

MicroPython drops docstrings when it compiles (frozen bytecode, .mpy and
source alike), so help() on a board cannot show them; checked here on the
firmware. The stubs must then cover every public call of the package with the
same parameters as the code, and carry the package's version."""

import ast
import os
import re

import pytest

from esp32_support import ROOT

from firmware import version  # noqa: E402

PKG = os.path.join(ROOT, "modules", "microtetherdb")
STUBS = os.path.join(ROOT, "stubs", "microtetherdb")


def test_firmware_keeps_no_docstrings(target):
    out = target.run_code(
        "def f():\n    'a docstring'\n    return 1\n"
        "print(hasattr(f, '__doc__'))\n"
        "from microtetherdb import MicroTetherDB\n"
        "help(MicroTetherDB.put)\n")
    lines = out.strip().splitlines()
    assert lines[0] == "False", out
    # help() of a frozen function: its type, no text
    assert re.fullmatch(r"object <function put at 0x[0-9a-f]+> is of type function", lines[1]), out


def _tree(path):
    with open(path) as f:
        return ast.parse(f.read(), path)


def _params(fn):
    a = fn.args
    return ([x.arg for x in a.posonlyargs + a.args], a.vararg and a.vararg.arg,
            [x.arg for x in a.kwonlyargs], a.kwarg and a.kwarg.arg)


def _methods(cls):
    out = {}
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.setdefault(node.name, []).append(node)
    return out


def _class(tree, name):
    return [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name][0]


def _public(name):
    return not name.startswith("_") or name in (
        "__init__", "__contains__", "__len__", "__iter__", "__enter__", "__exit__",
        "__aenter__", "__aexit__")


def test_stubs_cover_every_public_method_with_its_parameters():
    code = _methods(_class(_tree(os.path.join(PKG, "db.py")), "MicroTetherDB"))
    stub = _methods(_class(_tree(os.path.join(STUBS, "__init__.pyi")), "MicroTetherDB"))
    public = sorted(n for n in code if _public(n))
    assert len(public) > 30
    assert sorted(n for n in stub) == public
    for name in public:
        real = code[name][0]
        impl = stub[name][-1]
        assert type(impl) is type(real), name   # async stays async
        want = _params(real)
        if len(stub[name]) > 1:
            # @overload variants of a call that takes *args: together they name
            # every keyword the code accepts
            assert want[1] == "args", name
            named = set()
            for v in stub[name]:
                named.update(_params(v)[0] + _params(v)[2])
            assert set(want[2]) <= named, (name, want[2], named)
            continue
        if name == "__init__":
            # the code takes autoflush, clock, ... through **kw; the stub names them
            assert want[3] == "kw" and _params(impl)[0] == want[0], _params(impl)
            # (the keywords __init__ takes out of **kw, in its own order)
            popped = [n.args[0].value for n in ast.walk(real)
                      if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                      and n.func.attr == "pop" and isinstance(n.func.value, ast.Name)
                      and n.func.value.id == "kw"]
            assert _params(impl)[2] == popped, (_params(impl)[2], popped)
            continue
        assert _params(impl) == want, (name, _params(impl), want)


def test_stubs_cover_the_exceptions_version_and_legacy():
    tree = _tree(os.path.join(STUBS, "__init__.pyi"))
    errors = _tree(os.path.join(PKG, "errors.py"))
    for cls in (n for n in errors.body if isinstance(n, ast.ClassDef)):
        stub = _class(tree, cls.name)
        assert [ast.unparse(b) for b in stub.bases] == [ast.unparse(b) for b in cls.bases]
    assert any(isinstance(n, ast.AnnAssign) and n.target.id == "__version__" for n in tree.body)
    code = {n.name: n for n in _tree(os.path.join(PKG, "legacy.py")).body
            if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
    stub = {n.name: n for n in _tree(os.path.join(STUBS, "legacy.pyi")).body
            if isinstance(n, ast.FunctionDef)}
    assert sorted(stub) == sorted(code)
    for name in code:
        assert _params(stub[name]) == _params(code[name]), name


def test_every_public_module_has_a_stub():
    # modules users import: the package and the lazily imported legacy module
    assert sorted(os.listdir(STUBS)) == ["__init__.pyi", "legacy.pyi", "py.typed"]


def test_stub_package_version_is_the_package_version():
    text = open(os.path.join(ROOT, "stubs", "pyproject.toml")).read()
    assert re.search(r'^version = "%s"$' % re.escape(version.version()), text, re.M)
    assert 'name = "micropython-microtetherdb-stubs"' in text
