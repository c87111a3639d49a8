"""The shape of the code: imports run one way only, and functions stay short.

Layers, bottom up: the core modules; db, storage, security; the runtime and the job
machinery; the domains; then the composition roots (api, cli, composition). A module
may import its own package, and packages of its layer or below, never above, lazily
(inside a function) or not. Domains import each other only along the declared graph.
The command-line client imports nothing of the server.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "chatferry"

LAYERS: dict[str, int] = {
    "core": 0,
    "obs": 0,
    "db": 1,
    "storage": 1,
    "security": 1,
    "runtime": 2,
    "jobs": 2,
    "apps": 3,
    "exports": 3,
    "imports": 3,
    "schedules": 3,
    "stats": 3,
    "demo": 3,
    "webhooks": 3,
    "console": 4,
    "composition": 4,
    "preflight": 4,
    "api": 4,
    "cli": 4,
    "main": 4,
    "client": 4,
    "convert": 4,
}
CORE_MODULES = {"__init__", "settings", "clock", "errors", "resources", "fs"}
# Which domains a domain may use (and nothing else of layer 3).
DOMAIN_DEPENDENCIES: dict[str, set[str]] = {
    "apps": set(),
    "exports": {"apps"},
    "imports": {"apps"},
    "schedules": {"apps", "exports"},
    "stats": {"apps", "exports"},
    "demo": set(),
    "webhooks": {"apps"},
}
CLIENT_MAY_IMPORT = {"client", "core"}
CONVERT_MAY_IMPORT = {"convert", "client", "core"}  # the converters: client-side, offline
MAX_FUNCTION_LINES = 50


def package_of(module: str) -> str:
    """``chatferry.exports.job`` -> exports; ``chatferry.settings`` -> core."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    name = parts[1]
    if (SRC / name).is_dir():
        return name
    if name in CORE_MODULES:
        return "core"
    return "main" if name == "__main__" else name


def module_name(path: Path) -> str:
    relative = path.relative_to(SRC.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every chatferry module the file imports, at any depth, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("chatferry")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chatferry"):
            found.append((node.lineno, node.module or ""))
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` (a package) may not import ``imported``, or None if it may."""
    if importer == imported:
        return None
    if importer == "client":
        return None if imported in CLIENT_MAY_IMPORT else "the client imports the server"
    if importer == "convert":
        return None if imported in CONVERT_MAY_IMPORT else "the converters import the server"
    if imported == "client":
        return None if importer == "cli" else "only the CLI uses the client"
    if imported == "convert":
        return None if importer == "cli" else "only the CLI uses the converters"
    low, high = LAYERS[imported], LAYERS[importer]
    if low > high:
        return "imports a package above it"
    if low == high == 3 and imported not in DOMAIN_DEPENDENCIES[importer]:
        return "imports a domain outside its declared dependencies"
    return None


def source_files(migrations: bool = False) -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if migrations or "migrations" not in p.parts)


def test_every_package_has_a_layer() -> None:
    packages = {package_of(module_name(p)) for p in source_files()}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_imports_between_packages_run_one_way_only() -> None:
    problems = []
    for path in source_files():
        importer = package_of(module_name(path))
        for line, module in imported_modules(path):
            why = violation(importer, package_of(module))
            if why:
                problems.append(f"{path.relative_to(SRC)}:{line} {module}: {why}")
    assert problems == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("exports", "schedules", False),
        ("jobs", "exports", False),
        ("db", "jobs", False),
        ("schedules", "exports", True),
        ("api", "exports", True),
        ("client", "db", False),
        ("exports", "client", False),
        ("convert", "client", True),
        ("convert", "imports", False),
        ("api", "convert", False),
    ],
)
def test_the_rule_itself_catches_upward_imports(
    importer: str, imported: str, allowed: bool
) -> None:
    assert (violation(importer, imported) is None) is allowed


def test_no_function_is_over_50_lines() -> None:
    long = []
    for path in source_files(migrations=True):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length})")
    assert long == []
