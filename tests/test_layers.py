"""The import contract: web → meetings.live → domain packages → db/settings, checked on every import.

A test rather than import-linter: the rules are a few lines over `ast`, they see function-local
imports too (where hidden reactions between packages used to live), and no dependency is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent

# The ground floor: anything may use these; they use no domain package.
FOUNDATION = {"db", "settings", "errors", "i18n", "text", "logs", "wire"}
# Above the domain packages: the live meeting, the demo city and the CLI put several together.
ABOVE_DOMAIN = {"live", "demo", "cli"}


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported name) for every import in meetings/ and web/."""
    found: list[tuple[str, str]] = []
    for top in ("meetings", "web"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join(parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found += [(module, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.append((module, node.module))
    return found


def _package(name: str) -> str:
    """`meetings.rooms.room` → "rooms"; `web.views.x` → "web"; a third-party name → itself."""
    parts = name.split(".")
    if parts[0] == "meetings":
        return parts[1] if len(parts) > 1 else "meetings"
    return parts[0]


def _is_meetings(name: str) -> bool:
    return name == "meetings" or name.startswith("meetings.")


def test_aiortc_stays_inside_meetings_rtc() -> None:
    wrong = [(m, n) for m, n in _imports() if _package(n) == "aiortc" and not m.startswith("meetings.rtc")]
    assert wrong == []


def test_no_domain_package_imports_aiohttp_or_web() -> None:
    wrong = [(m, n) for m, n in _imports() if _is_meetings(m) and _package(n) in {"aiohttp", "web"}]
    assert wrong == []


def test_rtc_imports_no_other_domain_package() -> None:
    wrong = [
        (m, n)
        for m, n in _imports()
        if m.startswith("meetings.rtc") and _is_meetings(n) and _package(n) not in {"rtc", *FOUNDATION}
    ]
    assert wrong == []


def test_domain_packages_do_not_reach_up() -> None:
    wrong = [
        (m, n)
        for m, n in _imports()
        if _is_meetings(m)
        and _package(m) not in ABOVE_DOMAIN
        and _is_meetings(n)
        and _package(n) in ABOVE_DOMAIN
    ]
    assert wrong == []


def test_the_foundation_uses_no_domain_package() -> None:
    wrong = [
        (m, n)
        for m, n in _imports()
        if _is_meetings(m) and _package(m) in FOUNDATION and _is_meetings(n) and _package(n) not in FOUNDATION
    ]
    assert wrong == []


def test_web_keys_point_downwards_and_views_stand_side_by_side() -> None:
    imports = _imports()
    # Only the two modules whose types the keys name (metrics, the parsed form); never the
    # modules that own app resources (media, minutes viewers), which import the keys.
    keys_up = [
        n
        for m, n in imports
        if m == "web.keys" and n.startswith("web.") and n not in {"web.metrics", "web.form_data"}
    ]
    assert keys_up == []
    sideways = [(m, n) for m, n in imports if m.startswith("web.views.") and n.startswith("web.views")]
    assert sideways == []


def test_the_contract_sees_the_imports() -> None:
    """Guard against a rule that passes because it finds nothing."""
    imports = _imports()
    assert ("web.views.room_ws", "aiohttp") in imports
    assert any(m.startswith("meetings.rtc") and _package(n) == "aiortc" for m, n in imports)
