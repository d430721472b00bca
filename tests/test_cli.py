"""The giaoban command and the server process: demo, imports, create-user, graceful shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `giaoban ARGS` with the environment."""
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI run against the test database."""
    return {
        **os.environ,
        "GIAOBAN_DATABASE_URL": database_url,
        "GIAOBAN_SECRET_KEY": "cli-test-secret",
        "GIAOBAN_VAR_DIR": str(tmp_path / "var"),
        "GIAOBAN_LOG_FORMAT": "text",
    }


def test_demo_loads_the_city_and_is_idempotent(env: dict[str, str]) -> None:
    first = run(["demo"], env)
    assert "57 units" in first.stdout and "admin@hue.example" in first.stdout
    # 118 invitees x 2 series, and the demo morning's follow-up issue mailed to VNPT's two people
    assert "238 emails in the outbox" in first.stdout
    second = run(["demo"], env)
    assert "0 units and 0 people created" in second.stdout
    assert "238 emails in the outbox" in second.stdout  # nothing sent twice


def test_import_units_with_one_bad_line_imports_nothing(env: dict[str, str], tmp_path: Path) -> None:
    run(["db", "upgrade"], env)
    bad = tmp_path / "units.csv"
    bad.write_text(
        "code,kind,name\nP-A,centre,Phường A\nP-B,centre,\nP-C,centre,Phường C\n", encoding="utf-8"
    )
    result = run(["import-units", str(bad)], env, check=False)
    assert result.returncode == 1
    assert "line 3: name" in result.stderr
    good = tmp_path / "good.csv"
    good.write_text("code,kind,name\nP-A,centre,Phường A\n", encoding="utf-8")
    assert "1 created" in run(["import-units", str(good)], env).stdout  # so nothing was left by the bad one


def test_import_people_and_create_user(env: dict[str, str], tmp_path: Path) -> None:
    run(["db", "upgrade"], env)
    units = tmp_path / "u.csv"
    units.write_text("code,kind,name\nSTP,department,Sở Tư pháp\n", encoding="utf-8")
    run(["import-units", str(units)], env)
    people = tmp_path / "p.csv"
    people.write_text("name,email,unit\nĐặng Thu Hà,ha@hue.example,STP\n", encoding="utf-8")
    assert "1 created" in run(["import-people", str(people)], env).stdout
    result = run(
        [
            "create-user",
            "--email",
            "boss@hue.example",
            "--name",
            "Phó Chủ tịch",
            "--role",
            "chair",
            "--password",
            "long enough pw",
        ],
        env,
    )
    assert "boss@hue.example (chair)" in result.stdout
    again = run(
        [
            "create-user",
            "--email",
            "boss@hue.example",
            "--name",
            "X",
            "--role",
            "chair",
            "--password",
            "long enough pw",
        ],
        env,
        check=False,
    )
    assert again.returncode == 1 and "exists" in again.stderr
    missing = run(["import-people", str(tmp_path / "nope.csv")], env, check=False)
    assert missing.returncode != 0 and "cannot read" in missing.stderr


def test_import_people_keeps_an_administrator_and_fills_messages(env: dict[str, str], tmp_path: Path) -> None:
    run(["db", "upgrade"], env)
    units = tmp_path / "u.csv"
    units.write_text("code,kind,name\nP-PHONGDIEN,centre,Phường Phong Điền\n", encoding="utf-8")
    run(["import-units", str(units)], env)
    run(["create-user", "--email", "admin@hue.example", "--name", "Quản trị", "--role", "administrator",
         "--password", "long enough pw"], env)  # fmt: skip
    pwned = tmp_path / "pwned.csv"
    pwned.write_text("email,name,role,unit\nadmin@hue.example,Pwned,member,P-PHONGDIEN\n", encoding="utf-8")
    result = run(["import-people", str(pwned)], env, check=False)
    assert result.returncode == 1
    assert "line 2: role: At least one active administrator must remain" in result.stderr
    for content, expected in (
        ("name,email\nHà,ha@hue.example\n".encode("utf-16"), "(line 1)"),
        (b"nom,courriel\nA,a@hue.example\n", "name, email, unit, phone, title, role, language"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_bytes(content)
        result = run(["import-people", str(bad)], env, check=False)
        assert result.returncode == 1
        summary = result.stderr.splitlines()[0]
        assert expected in summary and "%(" not in summary, summary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_stop(env: dict[str, str]) -> tuple[str, str, int]:
    """Run server.py, wait until /healthz answers, stop it with SIGTERM: (stdout, stderr, port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=ROOT,
        env={**env, "GIAOBAN_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        return out, err, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_server_starts_serves_and_shuts_down_gracefully(env: dict[str, str]) -> None:
    run(["db", "upgrade"], env)
    out, err, port = serve_and_stop(env)
    assert f"running at http://127.0.0.1:{port}/" in out
    # No line per request by default: the demo's terminal stays readable.
    assert "GET /healthz" not in err


def test_the_access_log_setting_logs_each_request(env: dict[str, str]) -> None:
    run(["db", "upgrade"], env)
    _out, err, _port = serve_and_stop({**env, "GIAOBAN_ACCESS_LOG": "true"})
    lines = [line for line in err.splitlines() if "GET /healthz" in line]
    assert lines and "aiohttp.access" in lines[0], err
