"""Built-in plugins and adapters use only the documented surface of the service object, as an
outside vendor must (docs/plugins.md, "The service object")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from showme_core.surface import PUBLIC_SURFACE

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    [
        *(ROOT / "plugins").glob("showme_*"),
        *(ROOT / "adapters").glob("showme_*"),
        *(ROOT / "tests" / "external").glob("showme-*/showme_*"),
    ]
)
# How plugin code names the service object it was handed.
SERVICE_NAMES = {"showme", "service"}


# The core modules a plugin may import: the hooks, the provider interfaces and the types the
# surface hands out. Anything else is the core's own.
PUBLIC_MODULES = {
    "showme_core.hookspecs",
    "showme_core.providers",
    "showme_core.errors",
    "showme_core.events",
    "showme_core.event_types",
    "showme_core.plugin_state",
    "showme_core.auth",
    "showme_core.config",
    "showme_core.app",
}


def _names_service(node: ast.expr) -> bool:
    """``showme``, ``service``, or any ``<something>.showme`` / ``._showme``: the service object
    however it was handed on (``self.showme``, ``adapter.showme``, ``request.app.state.showme``)."""
    if isinstance(node, ast.Name):
        return node.id in SERVICE_NAMES
    return isinstance(node, ast.Attribute) and node.attr.lstrip("_") in SERVICE_NAMES


def reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """Every attribute of the service object a module uses, as ``showme.x`` or
    ``getattr(showme, "x")``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _names_service(node.value):
            found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and node.args
            and _names_service(node.args[0])
        ):
            named = node.args[1] if len(node.args) > 1 else None
            attribute = named.value if isinstance(named, ast.Constant) else "<computed>"
            found.append((node.lineno, str(attribute)))
    return found


def imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``showme_core`` module a module imports."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("showme_core"):
            found.append((node.lineno, str(node.module)))
        elif isinstance(node, ast.Import):
            found.extend(
                (node.lineno, alias.name)
                for alias in node.names
                if alias.name.startswith("showme_core")
            )
    return found


def test_there_are_packages_to_check() -> None:
    names = {package.name for package in PACKAGES}
    assert {"showme_sms_twilio", "showme_sms_pigeon"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.name)
def test_a_plugin_uses_only_the_public_surface(package: Path) -> None:
    outside = [
        f"{module.relative_to(ROOT)}:{line}: showme.{attribute}"
        for module in sorted(package.rglob("*.py"))
        for line, attribute in reaches(ast.parse(module.read_text()))
        if attribute not in PUBLIC_SURFACE
    ]
    assert outside == [], "reaches outside the service object's public surface:\n" + "\n".join(
        outside
    )


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.name)
def test_a_plugin_imports_only_public_modules(package: Path) -> None:
    outside = [
        f"{module.relative_to(ROOT)}:{line}: {name}"
        for module in sorted(package.rglob("*.py"))
        for line, name in imports(ast.parse(module.read_text()))
        if name not in PUBLIC_MODULES
    ]
    assert outside == [], "imports the core's own modules:\n" + "\n".join(outside)


def test_the_surface_is_documented() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    table = docs.split("## The service object", 1)[1].split("\n## ", 1)[0]
    missing = [
        name for name in PUBLIC_SURFACE if f"`{name}" not in table and f" {name}(" not in table
    ]
    assert missing == [], f"docs/plugins.md does not describe {missing}"


def test_the_check_can_fail() -> None:
    assert reaches(ast.parse("async def f(showme):\n    return showme.db\n")) == [(2, "db")]
    assert reaches(ast.parse("class A:\n  def f(self):\n    self._showme.hub\n")) == [(3, "hub")]
    for reached in (
        "adapter.showme.db",
        "self._adapter.showme.db",
        "request.app.state.showme.db",
        "getattr(showme, 'db')",
    ):
        assert [attribute for _line, attribute in reaches(ast.parse(reached))] == ["db"], reached
    assert imports(ast.parse("from showme_core.store import schema\nimport showme_core.web")) == [
        (1, "showme_core.store"),
        (2, "showme_core.web"),
    ]
