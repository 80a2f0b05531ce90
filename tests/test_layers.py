"""The package's layers: every module imports on its own, and imports point one way.

Layers, lowest first: the library (``reunite/*.py``), the HTTP API (``reunite.api``), the staff
pages (``reunite.web``), the composition root (``reunite.app``, and ``reunite.workers``, which
runs it in several processes). A module may import its own
layer and those below it; the command line (``reunite.cli``, ``reunite.__main__``) may import
any. The library never imports a web framework.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "reunite"

NOT_IMPORTABLE_ALONE = {"reunite.migrations.env"}
"""Alembic runs these itself (they need its context); ``migrations/versions`` are not modules."""

LAYERS = {"library": 0, "api": 1, "web": 2, "app": 3, "cli": 4}
WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
APP_MODULES = ("app", "workers")
"""The modules directly under ``reunite/`` that are the composition root, not the library."""


def module_names() -> list[str]:
    """Every module of the package, dotted, packages included."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if "versions" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in NOT_IMPORTABLE_ALONE:
            names.append(name)
    return names


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("api", "web", "cli"):
        return parts[1]
    if len(parts) > 1 and parts[1] in APP_MODULES:
        return "app"
    if module == "reunite.__main__":
        return "cli"
    return "library"


def imported_names(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports anywhere (functions included), absolute and dotted; for
    ``from a import b`` both ``a`` and ``a.b``."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def is_within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def layer_violations(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """``module imports name (why)`` for each import that breaks the rules."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        layer = LAYERS[layer_of(module)]
        for name in sorted(imported_names(path, module)):
            if is_within(name, "reunite") and LAYERS[layer_of(name)] > layer:
                found.append(f"{module} imports {name} (a higher layer)")
            if layer == 0 and any(is_within(name, f) for f in WEB_FRAMEWORKS):
                found.append(f"{module} imports {name} (the library has no web framework)")
    return found


CHILD = """
import ast, importlib, json, os, pathlib, sys, traceback

modules, package_dir = json.loads(sys.argv[1]), pathlib.Path(sys.argv[2])


def module_level(statements):
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for block in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(node, (ast.If, ast.Try, ast.ExceptHandler)):
                yield from module_level(getattr(node, block, []))


# Third-party packages our modules import at their top are loaded once, before forking; each
# child then imports one of our modules into an interpreter that holds none of them.
for path in package_dir.rglob("*.py"):
    for node in module_level(ast.parse(path.read_text(encoding="utf-8")).body):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        for name in names if not getattr(node, "level", 0) else []:
            top = (name or "").split(".")[0]
            if top and top != "reunite" and top not in sys.modules:
                try:
                    importlib.import_module(top)
                except Exception:
                    pass
assert not [m for m in sys.modules if m == "reunite" or m.startswith("reunite.")]


def started(module):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            code, message = 0, b""
        except BaseException:
            code, message = 1, traceback.format_exc().encode()
        os.write(write, message)
        os._exit(code)
    os.close(write)
    return pid, module, os.fdopen(read, "rb")


failures, running, waiting = {}, [], list(modules)
while waiting or running:
    while waiting and len(running) < max(2, os.cpu_count() or 2):
        running.append(started(waiting.pop()))
    pid, status = os.wait()
    [(module, pipe)] = [(m, f) for p, m, f in running if p == pid]
    running = [r for r in running if r[0] != pid]
    message = pipe.read().decode()
    pipe.close()
    if status != 0:
        failures[module] = message or f"exit status {status}"
print(json.dumps(failures))
"""


def test_every_module_imports_alone_in_a_fresh_interpreter():
    modules = module_names()
    assert "reunite.web" in modules and "reunite.app" in modules
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(modules), str(PACKAGE_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{name}:\n{error}" for name, error in failures.items())


def test_imports_point_one_way():
    assert not layer_violations(), "\n".join(layer_violations())


def test_the_layer_rules_catch_what_they_forbid(tmp_path):
    package = tmp_path / "reunite"
    (package / "api").mkdir(parents=True)
    (package / "web").mkdir()
    (package / "api" / "pages.py").write_text("def f():\n    from reunite.web import pages\n")
    (package / "web" / "home.py").write_text("from .. import app\nfrom reunite.api import auth\n")
    (package / "store.py").write_text(
        "import starlette.types\nimport uvicorn\nfrom reunite import webhooks, workers\n"
    )
    assert layer_violations(package) == [
        "reunite.api.pages imports reunite.web (a higher layer)",
        "reunite.api.pages imports reunite.web.pages (a higher layer)",
        "reunite.store imports reunite.workers (a higher layer)",
        "reunite.store imports starlette.types (the library has no web framework)",
        "reunite.store imports uvicorn (the library has no web framework)",
        "reunite.web.home imports reunite.app (a higher layer)",
    ]


def test_every_module_is_in_the_architecture_map():
    """docs/architecture.md names each module (or, for web and cli, each file of the package)."""
    page = (PACKAGE_DIR.parent / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR.parent)
        if relative.parts[1] == "migrations" or path.name in ("__init__.py", "__main__.py"):
            continue
        named = f"`{relative.as_posix()}`" in page or f"`{path.name}`" in page
        if not named:
            missing.append(relative.as_posix())
    assert not missing, f"not in docs/architecture.md: {missing}"
