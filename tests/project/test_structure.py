"""The package's shape: stages are folders, imports flow one way down the pipeline, and the
cache's names are spelled once. Read from the source, so a lazy import inside a function or one
under ``TYPE_CHECKING`` counts like any other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from smtp_ca.cache import layout
from support.import_graph import find_cycle, import_graph, reachable
from support.paths import SOURCE

PACKAGE = SOURCE / "smtp_ca"

# The shared modules, then each stage in pipeline order: a module imports only from its own
# stage, from those before it, and from the shared modules.
SHARED = ("smtp_ca", "output", "errors", "untrusted", "files")
ORDER = (
    "net",
    "cache",
    "settings",
    "dependencies",
    "bundle",
    "check",
    "platforms",
    "wiring",
    "pipeline",
    "cli",
    "__main__",
)


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _rank(module: str) -> int:
    stage = _stage(module)
    return -1 if stage in SHARED else ORDER.index(stage)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SOURCE)


def test_the_import_graph_has_no_cycle(graph: dict[str, set[str]]) -> None:
    assert find_cycle(graph) is None


def test_a_cycle_through_a_lazy_or_type_checking_import_is_found(tmp_path: Path) -> None:
    package = tmp_path / "smtp_ca"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from smtp_ca.b import g\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from smtp_ca import a\n"
    )
    assert find_cycle(import_graph(tmp_path)) == ["smtp_ca.a", "smtp_ca.b", "smtp_ca.a"]


def test_every_stage_is_known_to_the_order(graph: dict[str, set[str]]) -> None:
    unknown = {_stage(m) for m in graph} - set(SHARED) - set(ORDER)
    assert not unknown, f"add {sorted(unknown)} to ORDER or SHARED in {__file__}"


def test_imports_go_down_the_pipeline(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if _stage(source) != _stage(target) and _rank(target) > _rank(source)
    )
    # The shared modules import nothing of the stages, and each other only one way.
    shared = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if _stage(source) in SHARED and _stage(target) not in SHARED
    )
    assert upward == [] and shared == []


def test_the_package_top_level_fits_in_one_look() -> None:
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 16, entries


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_re_exports_what_it_imports() -> None:
    re_exports = [
        f"{path.relative_to(SOURCE)}:{node.lineno}: {alias.name}"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
        if alias.asname is not None and alias.asname == alias.name.rpartition(".")[2]
    ]
    assert re_exports == []


def test_a_stage_package_is_its_docstring_only() -> None:
    """Importing ``smtp_ca.check.naming`` must not run the check's flow: a stage's
    ``__init__`` imports nothing."""
    facades = []
    for init in PACKAGE.glob("*/__init__.py"):
        if init.parent.name == "platforms":  # what a platform is: a Protocol, no imports of ours
            continue
        body = ast.parse(init.read_text()).body
        if len(body) != 1 or not isinstance(body[0], ast.Expr):
            facades.append(init.relative_to(SOURCE))
    assert facades == []


def test_the_dyno_facing_names_load_only_the_settings(graph: dict[str, set[str]]) -> None:
    loaded = reachable(graph, "smtp_ca.check.naming")
    others = sorted(m for m in loaded if _stage(m) not in {*SHARED, "settings"})
    assert others == ["smtp_ca.check.naming"]


def _path_names() -> dict[str, str]:
    return {
        value: name
        for name, value in vars(layout).items()
        if name.isupper() and isinstance(value, str) and not value.startswith("Clear")
    }


def _spellings(path: Path, names: dict[str, str]) -> list[str]:
    """Where ``path`` spells one of ``names`` as a path part: ``cache / "aia"``,
    ``Path("python-deps")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        parts: list[ast.expr] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [node.right]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path":
            parts = list(node.args)
        for part in parts:
            if isinstance(part, ast.Constant) and part.value in names:
                found.append(f"{path.name}:{node.lineno}: {part.value!r}")
    return found


def test_the_cache_names_are_spelled_only_in_its_layout() -> None:
    """A cache name spelled anywhere but cache/layout.py is a second spelling that can drift."""
    names = _path_names()
    spelled = [
        spelling
        for path in _modules()
        if path != PACKAGE / "cache" / "layout.py"
        for spelling in _spellings(path, names)
    ]
    assert spelled == []
    # The bash that runs before any Python names none of them either.
    for script in (SOURCE.parent / "bin").rglob("*"):
        if script.is_file():
            text = script.read_text()
            assert not [n for n in ("python-deps", "CACHEDIR.TAG", "smtp-ca/") if n in text]


def test_a_second_spelling_of_a_cache_name_is_found(tmp_path: Path) -> None:
    names = _path_names()
    assert {"python-deps", "aia", "ocsp", "crl", ".lock", "scratch", "smtp-ca"} <= set(names)
    module = tmp_path / "ocsp.py"
    module.write_text("from pathlib import Path\nkept = Path('/c') / 'ocsp' / 'x.der'\n")
    assert _spellings(module, names) == ["ocsp.py:2: 'ocsp'"]


def test_the_unit_tests_mirror_the_stages() -> None:
    """tests/unit/<stage>/ beside src/smtp_ca/<stage>/: a folder for a stage that is gone, or
    named after something else (a review, an issue), has no place there."""
    unit = SOURCE.parent / "tests" / "unit"
    folders = {p.name for p in unit.iterdir() if p.is_dir() and p.name != "__pycache__"}
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders and folders <= stages, sorted(folders - stages)
    kinds = {p.name for p in (SOURCE.parent / "tests").iterdir() if p.is_dir()}
    assert {"unit", "in_process", "e2e", "project"} <= kinds
    assert not list((SOURCE.parent / "tests").glob("test_*.py")), "a test belongs in a folder"
