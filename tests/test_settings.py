"""Settings: declared once, every one documented, read from env and TOML, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetings.settings import SettingsError, load_settings, setting_fields

DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [f.name for f in setting_fields() if f"GIAOBAN_{f.name.upper()}" not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_every_setting_has_help() -> None:
    assert all(f.metadata.get("help") for f in setting_fields())


def test_defaults_serve_the_demo() -> None:
    s = load_settings(environ={})
    assert s.database_url.startswith("sqlite+aiosqlite:///./var/")
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.timezone == "Asia/Ho_Chi_Minh"
    assert s.default_language == "vi"
    assert s.base_url == "http://127.0.0.1:8080"


def test_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "giaoban.toml"
    config.write_text('[giaoban]\nport = 9000\nlog_format = "text"\ncookie_secure = true\n', encoding="utf-8")
    s = load_settings(environ={"GIAOBAN_CONFIG": str(config), "GIAOBAN_PORT": "9100"})
    assert s.port == 9100  # environment wins over the file
    assert s.log_format == "text" and s.cookie_secure is True
    assert load_settings(environ={}, port="9200").port == 9200


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"GIAOBAN_PORT": "eighty"}, "port"),
        ({"GIAOBAN_PORT": "70000"}, "port"),
        ({"GIAOBAN_TIMEZONE": "Mars/Olympus"}, "time zone"),
        ({"GIAOBAN_DEFAULT_LANGUAGE": "fr"}, "default_language"),
        ({"GIAOBAN_COOKIE_SECURE": "maybe"}, "cookie_secure"),
    ],
)
def test_bad_values_are_refused_clearly(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load_settings(environ=env)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[giaoban]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        load_settings(environ={}, config_file=config)
