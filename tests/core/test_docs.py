"""Meta-tests: every hook is documented in docs/plugins.md with its signature, and exercised by a
test; the README keeps its two commands."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from showme_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if name.startswith("showme_") and inspect.isfunction(fn)
)


def test_there_are_hooks() -> None:
    assert "showme_register_sms_providers" in HOOKS
    assert all(name.startswith("showme_") for name in HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"\n### {hook}\n" in docs, f"docs/plugins.md lacks a heading for {hook}"
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    section = docs.split(f"\n### {hook}\n", 1)[1].split("\n### ", 1)[0]
    match = re.search(rf"def {hook}\(([^)]*(?:\([^)]*\)[^)]*)*)\)", section)
    assert match, f"docs/plugins.md does not show the signature of {hook}"
    documented = [p.split(":")[0].strip() for p in re.split(r",\s*(?![^\[]*\])", match.group(1))]
    assert documented == params, f"{hook}: docs say {documented}, spec says {params}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    for param in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f":param {param}:" in doc, f"{hook} docstring lacks :param {param}:"
    assert ":return:" in doc and "Fires" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    this = Path(__file__).resolve()
    sources = [p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.resolve() != this]
    assert any(hook in text for text in sources), f"no test implements or calls {hook}"


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_every_setting_is_documented() -> None:
    """An operator finds every setting, with its default, in docs/operations.md."""
    from showme_core.config import Settings

    docs = (ROOT / "docs" / "operations.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in docs]
    assert missing == [], f"docs/operations.md does not name these settings: {missing}"


def test_the_event_catalogue_is_documented_as_the_code_says() -> None:
    """docs/events.md is generated from showme_core/event_types.py: regenerate it with
    ``python -m showme_core.event_types > docs/events.md``."""
    from showme_core import event_types

    assert (ROOT / "docs" / "events.md").read_text() == event_types.markdown()


def test_every_event_type_is_emitted_by_the_service() -> None:
    """A type in the catalogue is one the core's own code emits (no documented ghost)."""
    from showme_core import event_types

    sources = "\n".join(p.read_text() for p in (ROOT / "showme_core").rglob("*.py"))
    for name in event_types.CATALOGUE:
        assert f'"{name}"' in sources.replace(f'EventType(\n        "{name}"', ""), name


def test_a_drifting_payload_is_logged_without_its_values() -> None:
    """Outside strict mode a payload that drifted from the catalogue is logged, never refused,
    and the log names the fields, not their values (a phone number, a position)."""
    from structlog.testing import capture_logs

    from showme_core import event_types

    drifted = {"invite": {"id": 5, "phone": "+32470123456", "note": "lat 50.8466"}}
    with capture_logs() as logs:
        event_types.check("invite.created", drifted, "an-invite", strict=False)
    assert logs and "invite.id: Input should be a valid string" in logs[0]["problems"]
    assert "+32470123456" not in repr(logs) and "50.8466" not in repr(logs)
    with pytest.raises(event_types.EventDoesNotMatch):
        event_types.check("invite.created", drifted, "an-invite", strict=True)
