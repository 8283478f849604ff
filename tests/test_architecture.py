"""The codebase's shape, checked: imports go one way (workers -> app -> training), domains do
not import each other in circles, no chain of imports between app's folders and top-level
modules comes back to where it started, and HTTP views and the CLI leave every query to services."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(package: str) -> dict[str, set[str]]:
    """Each module of the package -> the modules it imports (anywhere in it, lazily too)."""
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                if node.module in ("app", "training", "workers"):  # `from app import metrics`
                    names |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
        found[module] = names
    return found


def test_app_never_imports_workers_and_training_never_imports_the_service():
    app = imports("app")
    assert not {m: n for m, n in app.items() if any(i.startswith("workers") for i in n)}
    service = ("app", "workers", "fastapi", "sqlalchemy", "celery", "starlette")
    training = imports("training")
    assert not {m: n for m, n in training.items() if any(i.split(".")[0] in service for i in n)}


def test_domains_do_not_import_each_other_in_circles():
    app = imports("app")

    def domain(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 else None

    edges = {
        (domain(m), domain(i))
        for m, names in app.items()
        for i in names
        if i.startswith("app.") and domain(m) and domain(i) and domain(m) != domain(i)
    }
    assert not {(a, b) for a, b in edges if (b, a) in edges}, edges


def test_no_loop_between_the_houses_rooms():
    """Each folder of app/ and each module at its top (metrics.py, limits.py, ...) is a room;
    an import is a door from one room to another. No way through the doors may lead back to
    where it started: the bottom (counters, config, the database) imports nothing above it."""

    def room(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) >= 2 and parts[0] == "app" else None

    doors: dict[str, set[str]] = {}
    for module, names in imports("app").items():
        for name in names:
            here, there = room(module), room(name)
            if here and there and here != there:
                doors.setdefault(here, set()).add(there)

    def loop_from(start: str) -> list[str] | None:
        path, seen = [start], set()

        def walk(current: str) -> list[str] | None:
            for after in sorted(doors.get(current, ())):
                if after == start:
                    return [*path, start]
                if after not in seen:
                    seen.add(after)
                    path.append(after)
                    if found := walk(after):
                        return found
                    path.pop()
            return None

        return walk(start)

    loops = [found for start in sorted(doors) if (found := loop_from(start))]
    assert not loops, " ; ".join(" -> ".join(loop) for loop in loops)


def test_views_and_the_cli_leave_queries_to_services():
    thin = [*ROOT.glob("app/*/views.py"), *ROOT.glob("app/cli/*.py"), ROOT / "app/main.py"]
    offenders = {}
    for path in thin:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
                owner = called.value.id if isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name) else ""
                statement = isinstance(called, ast.Name) or owner == "sqlalchemy"
                if (
                    statement
                    and name in ("select", "update", "delete", "insert", "text")
                    or (owner == "session" and name in ("get", "scalar", "scalars", "execute", "query", "add"))
                ):
                    offenders.setdefault(str(path.relative_to(ROOT)), []).append(f"{owner}.{name} line {node.lineno}")
    assert offenders == {}


def test_the_api_starts_without_the_training_extra(sqlite_url):
    """The API image installs the service without `[train]` (docker/Dockerfile.api): importing
    the app and answering a request must not need Keras, TensorFlow, SciPy or the audio
    libraries, which only workers have."""
    import subprocess
    import sys

    blocked = ["keras", "tensorflow", "tensorflowjs", "scipy", "torch", "soundfile", "mido"]
    script = f"""
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed in the API image")
sys.meta_path.insert(0, Blocked())
from fastapi.testclient import TestClient
from app.main import create_app
client = TestClient(create_app())
assert client.get("/openapi.json").status_code == 200
assert client.get("/models/latest").status_code in (200, 404)
assert client.get("/studio/prime-fabric.js").status_code == 200
"""
    env = {"DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_runs_judgement_is_read_by_its_fields_not_by_keys():
    """A run's figures are one typed shape (training/judgement.py): no view, service, command or
    page digs into the stored dict by key, where a renamed figure would quietly read as nothing."""
    key_reads = re.compile(r"""metrics(\[["']|\.get\()|\.get\(["'](margin|choice|audio|corrections)["']""")
    offenders = {
        str(path.relative_to(ROOT)): [line.strip() for line in path.read_text().splitlines() if key_reads.search(line)]
        for folder in ("app", "workers")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".html")
    }
    assert {path: lines for path, lines in offenders.items() if lines} == {}


def test_no_test_module_imports_another():
    """Helpers and fixtures tests share live in tests/support/ and conftest.py, never in a test module."""
    tests = imports("tests")
    offenders = {
        module: sorted(name for name in names if name.split(".")[-1].startswith("test_") and name.startswith("tests."))
        for module, names in tests.items()
    }
    assert {module: names for module, names in offenders.items() if names} == {}
