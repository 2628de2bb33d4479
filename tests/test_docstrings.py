"""Docstrings against signatures, across the public API.

Every public function and class documents each of its arguments (the project's
``**Arguments:**`` / ``**Fields:**`` lists of backticked names, a model's ``parameter`` /
``initial`` declarations, or at least a backticked mention in the docstring), documents no
argument it does not take, and appears in the API reference (``docs/api/*.md``; a
registered model on its generated page). Signatures change; this keeps the docstrings and
the reference from drifting. Only inspection: nothing is traced or compiled.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pathlib
import re
import types

import pytest

import brainmass_eqx as bx

ROOT = pathlib.Path(__file__).resolve().parent.parent
API_PAGES = ROOT / "docs" / "api"
# The public namespaces (not `compat`, brainmass's stateful API, which has its own tests).
MODULES = ("brainmass_eqx", "brainmass_eqx.models", "brainmass_eqx.coupling", "brainmass_eqx.noise",
           "brainmass_eqx.metrics", "brainmass_eqx.objectives", "brainmass_eqx.observation",
           "brainmass_eqx.datasets", "brainmass_eqx.fit", "brainmass_eqx.solvers", "brainmass_eqx.viz",
           "brainmass_eqx.network")

_HEADER = re.compile(r"^\s*\*\*([A-Z][^*]*?):\*\*", re.M)
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_ITEM = re.compile(rf"^\s*[-*] ((?:`{_NAME}`(?:\s*(?:,|/|and|or)\s*)?)+)")


def _public(modname: str) -> list[tuple[str, object]]:
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:  # a package that re-exports with ``from .x import Name as Name``
        names = [n for n, v in vars(mod).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
                 and str(getattr(v, "__module__", "")).startswith("brainmass_eqx")]
    return [(n, getattr(mod, n)) for n in names if inspect.isclass(getattr(mod, n)) or inspect.isfunction(getattr(mod, n))]


def _objects() -> list[tuple[str, object]]:
    seen, out = set(), []
    for modname in MODULES:
        for name, obj in _public(modname):
            if id(obj) not in seen:
                seen.add(id(obj))
                out.append((f"{modname}.{name}", obj))
    return out


def _sections(doc: str):
    """``(title, text)`` of each ``**Arguments...:**`` / ``**Fields:**`` / ``**Attributes:**`` section."""
    doc = inspect.cleandoc(doc or "")
    heads = list(_HEADER.finditer(doc))
    for i, h in enumerate(heads):
        title = h.group(1)
        if title.startswith("Argument") or title in ("Fields", "Attributes"):
            yield title, doc[h.end(): heads[i + 1].start() if i + 1 < len(heads) else len(doc)]


def _listed(doc: str) -> tuple[set[str], set[str], list[str]]:
    """(names in bulleted lists, names in inline lists, objects the arguments are "as")."""
    items, inline, as_ = set(), set(), []
    for title, text in _sections(doc):
        if title.startswith("Argument"):
            # "**Arguments:** `a` (...); `b` (...)", or "**Arguments:** as `fcd_ks`."
            inline.update(re.findall(rf"(?<!`)`({_NAME})`(?!`)", text))
            as_ += re.findall(rf"^\s*as `({_NAME})`", text)
        for line in text.splitlines():
            m = _ITEM.match(line)
            if m:
                items.update(re.findall(rf"`({_NAME})`", m.group(1)))
                items.update(re.findall(rf"`({_NAME})`:", line))
    return items, inline, as_


def _own_docs(obj) -> list[str]:
    if inspect.isclass(obj):
        docs = [obj.__dict__.get("__doc__") or ""]
        init = obj.__dict__.get("__init__")
        if init is not None and init.__doc__:
            docs.append(init.__doc__)
        return docs
    return [obj.__doc__ or ""]


def _all_docs(obj) -> list[str]:
    """The object's docstrings and its package base classes' (fields they document)."""
    docs = _own_docs(obj)
    if inspect.isclass(obj):
        docs += [b.__dict__.get("__doc__") or "" for b in obj.__mro__[1:] if b.__module__.startswith("brainmass_eqx")]
    return docs


def _declared(obj) -> set[str]:
    """Model fields documented by their ``parameter(doc=...)`` / ``initial`` declarations."""
    if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)):
        return set()
    return {f.name for f in dataclasses.fields(obj) if f.metadata.get("kind") in ("parameter", "initial")}


def _arguments(obj) -> tuple[list[str], bool] | None:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = sig.parameters.values()
    var = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
             and p.name != "self" and not p.name.startswith("_")]
    return names, var


def _module_of(where: str):
    return importlib.import_module(where.rpartition(".")[0])


def undocumented_arguments(where: str, obj) -> list[str]:
    """Arguments of ``obj`` that no docstring lists and none even mentions in backticks."""
    found = _arguments(obj)
    if found is None:
        return []
    names, _ = found
    documented = set(_declared(obj))
    text = ""
    for doc in _all_docs(obj):
        items, inline, as_ = _listed(doc)
        documented |= items | inline
        for other in as_:  # "**Arguments:** as `fcd_ks`."
            target = getattr(_module_of(where), other, None)
            if target is not None:
                for d in _all_docs(target):
                    documented |= set().union(*_listed(d)[:2])
        text += doc
    mentioned = set(re.findall(rf"``?({_NAME})", text))
    return [n for n in names if n not in documented and n not in mentioned]


def stale_arguments(obj) -> list[str]:
    """Names the object's own argument lists document that its signature does not take."""
    found = _arguments(obj)
    if found is None:
        return []
    names, var = found
    if var:  # **kwargs: documented keywords may be passed on
        return []
    listed = set().union(*(_listed(doc)[0] for doc in _own_docs(obj)))
    return sorted(listed - set(names))


def _page_objects() -> set[int]:
    """ids of the objects the API pages render (a module block: its members or public names)."""
    shown = set()
    for page in API_PAGES.glob("*.md"):
        for m in re.finditer(r"^::: ([\w.]+)\n((?:[ ]+.*\n?)*)", page.read_text(), re.M):
            path, options = m.group(1), m.group(2)
            try:
                obj = importlib.import_module(path)
            except ImportError:
                parent, _, attr = path.rpartition(".")
                obj = getattr(importlib.import_module(parent), attr)
            if isinstance(obj, types.ModuleType):
                members = (re.findall(r"^[ ]+- (\w+)$", options, re.M) if "members:" in options
                           else [n for n, _ in _public(path)])
                shown.update(id(getattr(obj, n)) for n in members)
            else:
                shown.add(id(obj))
    return shown


def missing_from_api_pages() -> list[str]:
    shown = _page_objects()
    models = set(bx.models.model_registry(include_blocks=True))  # docs/models/<Name>.md, generated
    return sorted({where for where, obj in _objects() if id(obj) not in shown and obj.__name__ not in models})


def test_the_checks_see_the_api():
    # The walk finds the public API and the parser reads the project's argument lists:
    # otherwise every test below would pass for want of anything to check.
    objects = dict(_objects())
    assert len(objects) > 150
    assert {"brainmass_eqx.simulate", "brainmass_eqx.Network", "brainmass_eqx.fit.ParamSpace",
            "brainmass_eqx.metrics.functional_connectivity"} <= set(objects)
    items, _, _ = _listed(bx.ensemble.__doc__)
    assert items == {"fn", "batch", "devices", "threads", "chunk", "check_memory"}
    assert undocumented_arguments("brainmass_eqx.x", lambda new_argument: None) == ["new_argument"]

    def renamed(b):
        """**Arguments:**

        - `a`: renamed to b.
        """

    assert stale_arguments(renamed) == ["a"]


@pytest.mark.parametrize("modname", MODULES)
def test_every_argument_is_documented(modname):
    bad = {}
    for where, obj in _objects():
        if where.rpartition(".")[0] == modname and (missing := undocumented_arguments(where, obj)):
            bad[where] = missing
    assert not bad, f"arguments missing from their docstrings (add them to the **Arguments:** list): {bad}"


@pytest.mark.parametrize("modname", MODULES)
def test_documented_arguments_exist(modname):
    bad = {}
    for where, obj in _objects():
        if where.rpartition(".")[0] == modname and (stale := stale_arguments(obj)):
            bad[where] = stale
    assert not bad, f"docstrings list arguments the signature does not take (renamed or removed?): {bad}"


def test_every_public_callable_has_a_docstring():
    bare = [where for where, obj in _objects() if not "".join(_own_docs(obj)).strip()]
    assert not bare, f"public callables without a docstring: {bare}"


@pytest.mark.skipif(not API_PAGES.is_dir(), reason="needs the checkout's docs/api (tests/ run outside it)")
def test_every_public_name_is_in_the_api_reference():
    missing = missing_from_api_pages()
    assert not missing, f"public names missing from docs/api/*.md: {missing}"
