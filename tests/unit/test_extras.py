"""The seams between the components, checked statically from the imports (ast), so they cannot
regress: the core (coattail/) imports no component, jobs/ never imports api/, and every third-party
module a package imports is installed by the extras it ships with (pyproject.toml) -- an image with
one component's extra (images/*/Dockerfile) can import that component, e.g. `import
jobs.framework.runner` without the api extra. Distributions are resolved through the installed
metadata of the dev venv, which holds every extra."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from coattail.cli import EXTRA_MODULES, SUBCOMMANDS, missing_extra_message

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
OURS = ("coattail", "connectors", "jobs", "api")

# Source folder (or file) -> the extras it is installed with (the core dependencies always come along).
GROUPS: dict[str, tuple[str, ...]] = {
    "coattail": (),
    "connectors": ("connectors",),
    # The chain simulator (`coattail simulate-chain`) drives a node with web3: the connectors extra.
    "connectors/chainsim": ("connectors",),
    "jobs": ("pipeline",),
    "jobs/batch": ("batch",),
    # The batch Spark step works on the pipeline's tables and frames: it runs in the Spark image.
    "jobs/batch/reprocess.py": ("pipeline", "batch"),
    # Alerts out of the system (Kafka/Kinesis publisher, webhooks): the Spark image has the connectors
    # extra through batch's, and `coattail alerts dispatch` runs in the Python image.
    "jobs/outbound": ("connectors",),
    "api": ("api",),
}

# Packages a folder must not import at all (not even inside a function).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "coattail": ("api", "connectors", "jobs"),
    "jobs": ("api",),
    "connectors": ("api",),
}

# Imports inside functions that reach beyond the folder's own extras, on purpose: (file or folder
# prefix, third-party module) -> why that is safe.
LAZY_ELSEWHERE: dict[tuple[str, str], str] = {
    ("coattail/contracts/spark.py", "pyspark"): "spark_schema is called by the pipeline only",
    ("coattail/devservices/kafka.py", "confluent_kafka"): "local broker set-up, `coattail dev` ('dev' extra)",
    ("jobs/batch/", "pyspark"): "the batch Spark steps run in the Spark image ('pipeline' extra)",
    ("jobs/batch/", "pandas"): "wallet scoring's pandas function runs in Spark's Python workers ('pipeline')",
}


@dataclass(frozen=True)
class Imported:
    module: str  # absolute dotted name
    line: int
    eager: bool  # runs at import time (module level, not under TYPE_CHECKING, not optional)
    typing_only: bool = False  # under TYPE_CHECKING: never runs


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def group_of(path: Path) -> str:
    rel = path.relative_to(REPO).as_posix()
    return max((g for g in GROUPS if rel == g or rel.startswith(g + "/")), key=len)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _catches_import_error(node: ast.Try) -> bool:
    names = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
    return bool(names & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"})


@cache
def imports_of(path: Path) -> tuple[Imported, ...]:
    """Every import in ``path`` with absolute names; ``from a import b`` also yields ``a.b`` when that
    is one of our modules (a submodule import)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[Imported] = []

    def visit(node: ast.AST, eager: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_eager, child_typing = eager, typing_only
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_eager = False
            elif isinstance(child, ast.If) and _is_type_checking(child):
                child_eager, child_typing = False, True
            elif isinstance(child, ast.Try) and _catches_import_error(child):
                child_eager = False  # optional at import time
            if isinstance(child, ast.Import):
                found.extend(Imported(a.name, child.lineno, child_eager, child_typing) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, child.module] if child.module else anchor)
                else:
                    base = child.module or ""
                found.append(Imported(base, child.lineno, child_eager, child_typing))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub.split(".")[0] in OURS and module_path(sub):
                        found.append(Imported(sub, child.lineno, child_eager, child_typing))
            visit(child, child_eager, child_typing)

    visit(ast.parse(path.read_text(), filename=str(path)), True, False)
    return tuple(found)


def sources() -> Iterator[Path]:
    for top in OURS:
        yield from sorted((REPO / top).rglob("*.py"))


def third_party(module: str) -> str | None:
    top = module.split(".")[0]
    if top in OURS or top in sys.stdlib_module_names or top == "__future__":
        return None
    return top


def eager_third_party(path: Path) -> dict[str, str]:
    """Third-party top-level modules that importing ``path`` imports, through our own modules
    (package __init__ files included) -> the file and line that imports it."""
    out: dict[str, str] = {}
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imp in imports_of(current):
            if not imp.eager:
                continue
            top = third_party(imp.module)
            if top:
                out.setdefault(top, f"{current.relative_to(REPO)}:{imp.line}")
                continue
            parts = imp.module.split(".")
            todo += [p for i in range(1, len(parts) + 1) if (p := module_path(".".join(parts[:i])))]
        parts = module_name(current).split(".")
        todo += [p for i in range(1, len(parts)) if (p := module_path(".".join(parts[:i])))]
    return out


# --- distributions ---------------------------------------------------------------------------------


def self_extras(requirement: Requirement) -> set[str] | None:
    return set(requirement.extras) if canonicalize_name(requirement.name) == PROJECT["name"] else None


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """Our direct requirements: the core plus ``extras``, self-references (coattail[x]) expanded."""
    out = [Requirement(r) for r in PROJECT["dependencies"]]
    todo, seen = list(extras), set[str]()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in PROJECT["optional-dependencies"][extra]:
            req = Requirement(raw)
            inner = self_extras(req)
            if inner is None:
                out.append(req)
            else:
                todo += sorted(inner)
    return out


@cache
def installed_closure(extras: tuple[str, ...]) -> frozenset[str]:
    """Canonical names of every distribution pip installs for the core plus ``extras``."""
    direct = declared(extras)
    for req in direct:
        try:
            metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} (pyproject.toml) is not installed in this venv: run scripts/setup.sh")
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in direct]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional part of a dependency that pip did not install here
        for sub in map(Requirement, requires):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in {"", *wanted}):
                todo.append((canonicalize_name(sub.name), frozenset(sub.extras)))
    return frozenset(name for name, _ in seen)


@cache
def distributions_of(module: str) -> frozenset[str]:
    return frozenset(canonicalize_name(d) for d in metadata.packages_distributions().get(module, []))


def provided(module: str, extras: tuple[str, ...]) -> bool:
    return bool(distributions_of(module) & installed_closure(extras))


# --- the seams -------------------------------------------------------------------------------------


def test_the_core_and_jobs_import_no_component_they_must_not() -> None:
    bad = []
    for path in sources():
        rel = path.relative_to(REPO).as_posix()
        for folder, banned in FORBIDDEN.items():
            if not rel.startswith(folder + "/"):
                continue
            bad += [
                f"{rel}:{imp.line} imports {imp.module}"
                for imp in imports_of(path)
                if imp.module.split(".")[0] in banned
            ]
    assert not bad, "imports across a seam:\n" + "\n".join(bad)


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_import_at_import_time_is_installed_by_the_groups_extras(group: str) -> None:
    extras = GROUPS[group]
    missing = []
    for path in sources():
        if group_of(path) != group:
            continue
        for module, where in eager_third_party(path).items():
            if not provided(module, extras):
                missing.append(f"{path.relative_to(REPO)} imports {module} (via {where})")
    label = f"the core + {', '.join(extras)}" if extras else "the core dependencies"
    assert not missing, f"not installed by {label}:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("group", list(GROUPS))
def test_imports_inside_functions_are_installed_or_explained(group: str) -> None:
    extras = GROUPS[group]
    missing = []
    for path in sources():
        if group_of(path) != group:
            continue
        rel = path.relative_to(REPO).as_posix()
        for imp in imports_of(path):
            top = third_party(imp.module)
            if imp.eager or imp.typing_only or not top or provided(top, extras):
                continue
            if any(rel.startswith(prefix) and top == mod for prefix, mod in LAZY_ELSEWHERE):
                continue
            missing.append(f"{rel}:{imp.line} imports {imp.module}")
    assert not missing, "lazy imports outside the extras (install it or explain in LAZY_ELSEWHERE):\n" + (
        "\n".join(missing)
    )


def test_every_declared_runtime_dependency_is_imported() -> None:
    """A requirement nobody imports only makes the images bigger."""
    imported: dict[str, set[str]] = {}  # top-level module -> groups importing it
    for path in sources():
        for imp in imports_of(path):
            if top := third_party(imp.module):
                imported.setdefault(top, set()).add(group_of(path))
    unused = []
    for extra in ("", "api", "connectors", "pipeline", "batch"):
        raw = PROJECT["dependencies"] if not extra else PROJECT["optional-dependencies"][extra]
        users = set(GROUPS) if not extra else {g for g, e in GROUPS.items() if extra in e}
        for req in map(Requirement, raw):
            if self_extras(req) is not None:
                continue
            name = canonicalize_name(req.name)
            if not any(name in distributions_of(m) and groups & users for m, groups in imported.items()):
                unused.append(f"{req} ({extra or 'core'})")
    assert not unused, "declared but never imported by the packages installed with it: " + ", ".join(unused)


def test_a_distribution_has_one_version_range_across_extras() -> None:
    ranges: dict[str, set[str]] = {}
    for raw in [
        *PROJECT["dependencies"],
        *(r for deps in PROJECT["optional-dependencies"].values() for r in deps),
    ]:
        req = Requirement(raw)
        if self_extras(req) is None:
            ranges.setdefault(canonicalize_name(req.name), set()).add(str(req.specifier))
    assert {n: s for n, s in ranges.items() if len(s) > 1} == {}


def test_the_dev_extra_holds_every_component() -> None:
    dev = installed_closure(("dev",))
    for extra in ("api", "connectors", "pipeline", "batch"):
        assert installed_closure((extra,)) <= dev, f"dev misses part of the {extra!r} extra"


# --- the CLI's view of the extras ------------------------------------------------------------------


def test_the_clis_extra_probes_belong_to_those_extras() -> None:
    assert set(EXTRA_MODULES) <= set(PROJECT["optional-dependencies"])
    for extra, modules in EXTRA_MODULES.items():
        for module in modules:
            assert provided(module, (extra,)), f"{module} is not installed by the {extra!r} extra"
            assert not provided(module, ()), f"{module} comes with the core: it cannot tell {extra!r} apart"
    for extra, groups in SUBCOMMANDS.items():
        assert extra is None or extra in EXTRA_MODULES, f"unknown extra {extra!r}"
        for module, _attr, name, _help in groups:
            folder = GROUPS[module.rpartition(".")[0].replace(".", "/")]
            if folder:
                assert extra == folder[0], (
                    f"`coattail {name}` lives in a package installed with {folder[0]!r}"
                )


def run_without(modules: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`coattail ARGV` in a fresh interpreter where ``modules`` cannot be imported (as in an image
    without their extra)."""
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        f"sys.argv = ['coattail', *{list(argv)!r}]\n"
        "from coattail.cli import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        (["fastapi"], ["api", "--port", "8001"], "api"),
        (["pyspark"], ["pipeline", "run"], "pipeline"),
        (["pyspark"], ["detect", "--help"], "pipeline"),
        (["confluent_kafka"], ["connectors", "run"], "connectors"),
        (["kubernetes"], ["batch", "run", "daily"], "batch"),
    ],
)
def test_a_command_without_its_extra_fails_with_one_line(
    blocked: list[str], argv: list[str], extra: str
) -> None:
    done = run_without(blocked, *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {missing_extra_message(argv[0], extra)}\n"


def test_the_cli_starts_and_lists_every_command_when_extras_are_missing() -> None:
    done = run_without(["fastapi", "pyspark", "confluent_kafka", "kubernetes"], "--help")
    assert done.returncode == 0, done.stderr
    for _module, _attr, name, _help in (group for groups in SUBCOMMANDS.values() for group in groups):
        assert re.search(rf"\b{name}\b", done.stdout), f"`coattail {name}` missing from --help"
    assert "needs the 'api' extra" in done.stdout


def test_a_command_reaching_into_a_missing_extra_later_fails_with_one_line(tmp_path: Path) -> None:
    """`coattail batch reprocess` has its own extra but runs on pyspark (the 'pipeline' extra)."""
    window = ["--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z"]
    done = run_without(["pyspark"], "batch", "reprocess", *window, "--master", "local[1]")
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: {missing_extra_message('batch', 'pipeline')} (pyspark is not installed)\n"
