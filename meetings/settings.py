"""Settings, declared once: name, default and help; read from GIAOBAN_* and an optional TOML file."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "GIAOBAN_"
CONFIG_ENV = "GIAOBAN_CONFIG"


def _s(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; see docs/configuration.md."""

    database_url: str = _s(
        "sqlite+aiosqlite:///./var/giaoban.sqlite3",
        "SQLAlchemy URL of the database. SQLite (`sqlite+aiosqlite:///path`) is the embedded "
        "default; PostgreSQL (`postgresql+asyncpg://user:pass@host/db`) is for production.",
    )
    host: str = _s("127.0.0.1", "Address the web server listens on.")
    port: int = _s(8080, "TCP port the web server listens on.")
    public_url: str = _s(
        "",
        "Public base URL used in links in emails and for the WebSocket Origin check. "
        "Empty means http://HOST:PORT.",
    )
    secret_key: str = _s(
        "",
        "Secret used to sign join links, feed tokens and CSRF tokens. Empty means a random "
        "key generated once and kept in VAR_DIR/secret_key. Several web nodes must share it.",
    )
    var_dir: str = _s("./var", "Directory for the SQLite database, the secret key and caught mail.")
    timezone: str = _s("Asia/Ho_Chi_Minh", "IANA time zone in which meetings are scheduled.")
    default_language: str = _s("vi", "Interface language when the visitor has not chosen one (vi or en).")
    log_level: str = _s("INFO", "Logging level: DEBUG, INFO, WARNING or ERROR.")
    log_format: str = _s("json", "Log line format: json (one object a line) or text.")
    access_log: bool = _s(
        False, "Log one line per HTTP request (aiohttp's access log); off by default, /metrics counts them."
    )
    max_body_bytes: int = _s(5 * 1024 * 1024, "Largest request body accepted, in bytes (CSV uploads).")
    session_hours: int = _s(12, "How long a login session lasts without activity, in hours.")
    cookie_secure: bool = _s(False, "Mark cookies Secure (set true behind HTTPS).")
    login_max_failures: int = _s(
        5, "Failed logins allowed per account (and 4x per client address) within the window."
    )
    login_window_minutes: int = _s(15, "Window for counting failed logins, in minutes.")
    shutdown_timeout: float = _s(10.0, "Seconds to let open requests finish on shutdown.")
    metrics_allow: str = _s(
        "127.0.0.1/32,::1/128",
        "Comma-separated networks (CIDR) from which GET /metrics is answered without a token; "
        "empty means none. A request that came through a proxy (it carries Forwarded or "
        "X-Forwarded-For) is never let in by its address, only by the token.",
    )
    metrics_token: str = _s(
        "",
        "Bearer token that lets a scraper read GET /metrics from any address "
        "(`Authorization: Bearer TOKEN`); empty means no token is accepted.",
    )
    smtp_host: str = _s(
        "",
        "SMTP server that sends the mail. Empty means the built-in mail catcher: mail is kept "
        "in VAR_DIR/mail and shown to administrators at /admin/mail/caught (for the demo).",
    )
    smtp_port: int = _s(587, "TCP port of the SMTP server.")
    smtp_username: str = _s("", "SMTP login name; empty means no authentication.")
    smtp_password: str = _s("", "SMTP password (with smtp_username).")
    smtp_security: str = _s(
        "starttls",
        "How the SMTP connection is protected: starttls (port 587), tls (implicit TLS, port 465) "
        "or none (a relay on a trusted network).",
    )
    smtp_timeout: float = _s(30.0, "Seconds to wait for the SMTP server before trying again later.")
    mail_from: str = _s(
        "giaoban@hue.example",
        "Sender address of every email; it is also the organiser of the meetings in invitations.",
    )
    mail_catcher_port: int = _s(
        8025,
        "Port of the built-in mail catcher on 127.0.0.1, used when smtp_host is empty (0: any free port).",
    )
    mail_poll_seconds: float = _s(2.0, "How often the outbox is checked for mail to send, in seconds.")
    mail_max_attempts: int = _s(
        20, "Attempts before a message is marked failed (retries back off from 30 s to 1 h)."
    )
    scheduler_enabled: bool = _s(
        True, "Run timed jobs (reminders, maintenance). Exactly one node runs them at a time."
    )
    scheduler_lease_seconds: float = _s(
        15.0,
        "Lifetime of the scheduler lease, in seconds: the node holding it runs the timed jobs and "
        "renews it every third of this; another node takes over this long after the holder dies.",
    )
    organizer_name: str = _s(
        "Văn phòng UBND thành phố Huế", "Display name of the organiser mailbox on invitations."
    )
    schedule_horizon_days: int = _s(
        60, "How many days ahead meetings are materialised (moved, cancelled, reminded)."
    )
    minutes_due_minutes: int = _s(
        30, "Minutes after a meeting ends when the secretary is reminded that the minutes are due."
    )
    readiness_board_open_minutes: int = _s(
        30, "Minutes before a meeting's start when its readiness board opens (it stays open until the end)."
    )
    readiness_check_hours: int = _s(
        24, "Hours a unit's last connection check counts on the readiness board (older ones are not shown)."
    )
    readiness_board_refresh_seconds: float = _s(
        5.0,
        "Seconds between the readiness board's reloads while someone watches it: connection checks "
        "and changes made on other nodes reach it this late at most (this node's joins and actions "
        "at once).",
    )
    room_open_minutes: int = _s(15, "Minutes before a meeting's start when its room lets people in.")
    room_grace_minutes: int = _s(
        30, "Minutes a room stays open after the meeting's planned end, unless the chair ends it."
    )
    room_capacity: int = _s(
        100, "Most people seated in one room (moderators always get in); as many may wait in its lobby."
    )
    reconnect_merge_seconds: int = _s(
        120,
        "A person who comes back within this many seconds of dropping out is counted as reconnecting: "
        "one attendance, mute state and raised hand kept.",
    )
    video_last_n: int = _s(
        6,
        "Most video streams a participant receives: the most recent speakers (screen shares and "
        "the chair first).",
    )
    signaling_heartbeat_seconds: float = _s(
        10.0,
        "Seconds between pings on a meeting's signaling WebSocket; a client that has not answered "
        "half as long after a ping is taken as gone and leaves the room.",
    )
    media_addresses: str = _s(
        "127.0.0.1",
        "Comma-separated local IP addresses on which the media server gathers its ICE host candidates "
        "(the addresses browsers send media to). The default keeps media on this machine, like `host`; "
        "`*` means every non-loopback interface. See docs/deployment.md.",
    )
    media_announced_address: str = _s(
        "",
        "Public IP address announced to browsers instead of the media address, for a media server "
        "behind a 1:1 NAT (Janus's nat_1_1_mapping); empty means the gathered addresses as they are.",
    )
    stun_urls: str = _s("", "Comma-separated STUN URLs given to browsers, e.g. stun:turn.hue.gov.vn:3478.")
    turn_urls: str = _s(
        "",
        "Comma-separated TURN URLs, e.g. turn:turn.hue.gov.vn:3478,turns:turn.hue.gov.vn:443?transport=tcp.",
    )
    turn_secret: str = _s("", "Shared secret of the TURN server (coturn static-auth-secret).")
    turn_ttl_seconds: int = _s(
        12 * 3600, "How long TURN credentials handed to a client stay valid, in seconds."
    )
    # Connection history and follow-up (meetings.readiness.history).
    readiness_followup_bad_meetings: int = _s(
        3,
        "Weak or failed meetings, among a unit's last readiness_followup_window_meetings, that open "
        "a connection follow-up issue assigned to the unit's operator.",
    )
    readiness_followup_window_meetings: int = _s(
        5, "How many of a unit's last meetings (excused ones left out) the connection follow-up looks at."
    )
    readiness_history_meetings: int = _s(
        20, "How many of its last meetings a unit's connection history page shows by default."
    )
    monitor_sample_seconds: float = _s(
        5.0,
        "How often the live monitoring samples each participant's connection from the media server's "
        "counters, in seconds (docs/readiness/monitor.md).",
    )
    monitor_save_seconds: float = _s(
        60.0,
        "How often what the live monitoring measured of each unit is saved during a meeting, in "
        "seconds (a restart loses at most this much of it).",
    )
    monitor_alert_seconds: float = _s(
        120.0,
        "A unit that stays on audio only or paused video this many seconds raises an alert on the "
        "monitoring page.",
    )
    record_weak_share: float = _s(
        0.2,
        "A unit's connection at a meeting is weak when this share of its connected time (0 to 1) was "
        "on a weak link: audio only, paused video, below the layer it asked for, or poor quality.",
    )
    record_weak_dropouts: int = _s(
        2, "A unit's connection at a meeting is weak when it dropped out at least this many times."
    )
    record_weak_join_delay_minutes: float = _s(
        10.0,
        "A unit's connection at a meeting is weak when it first connected more than this many minutes "
        "after the start.",
    )
    check_max_probes: int = _s(
        4,
        "Most connection checks measuring the network at once on one node (each sends a few "
        "megabytes for about 12 seconds); more are asked to try again shortly.",
    )
    check_probes_per_minute: int = _s(
        3, "Most connection checks one person may start in a minute (on one node)."
    )
    check_probe_max_bytes: int = _s(
        8_000_000,
        "Most bytes a connection check sends down, and takes up, over its data channel (each way).",
    )
    check_video_down_kbps: int = _s(
        500, "Download (kbit/s) a connection check must measure to be good enough for a meeting with video."
    )
    check_video_up_kbps: int = _s(
        300, "Upload (kbit/s) a connection check must measure to be good enough for a meeting with video."
    )
    check_audio_down_kbps: int = _s(
        64, "Download (kbit/s) a connection check must measure to be good enough for audio only."
    )
    check_audio_up_kbps: int = _s(
        48, "Upload (kbit/s) a connection check must measure to be good enough for audio only."
    )
    check_video_max_loss_pct: float = _s(
        5.0, "Most packet loss (%) a connection check may measure for a meeting with video."
    )
    check_audio_max_loss_pct: float = _s(
        20.0, "Most packet loss (%) a connection check may measure for audio only."
    )
    check_video_max_rtt_ms: int = _s(
        400, "Longest round trip (ms) a connection check may measure for a meeting with video."
    )
    check_audio_max_rtt_ms: int = _s(
        1000, "Longest round trip (ms) a connection check may measure for audio only."
    )
    check_support_phone: str = _s(
        "",
        "Support phone number a failed connection check shows when the person's unit has no "
        "operator with a phone in the directory.",
    )

    @property
    def base_url(self) -> str:
        """The public base URL without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def setting_fields() -> list[dataclasses.Field[Any]]:
    """The declared settings, in order."""
    return list(dataclasses.fields(Settings))


def _convert(name: str, kind: Any, raw: Any) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind_name == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind_name == "int":
            return int(raw)
        if kind_name == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: cannot read {raw!r} as {kind_name}") from exc


def networks(text: str, name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated CIDR networks; a bad one is a SettingsError naming the setting."""
    try:
        return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"setting {name}: {exc}") from exc


def media_addresses(settings: Settings) -> tuple[str, ...] | None:
    """The local addresses to gather media candidates on; None for every non-loopback interface."""
    parts = [part.strip() for part in settings.media_addresses.split(",") if part.strip()]
    if parts == ["*"]:
        return None
    if not parts:
        raise SettingsError("setting media_addresses: name at least one address, or *")
    try:
        return tuple(str(ip_address(part)) for part in parts)
    except ValueError as exc:
        raise SettingsError(f"setting media_addresses: {exc} (or * alone for every interface)") from exc


def _validate(settings: Settings) -> None:
    networks(settings.metrics_allow, "metrics_allow")
    media_addresses(settings)
    if settings.media_announced_address:
        try:
            ip_address(settings.media_announced_address)
        except ValueError as exc:
            raise SettingsError(f"setting media_announced_address: {exc}") from exc
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"setting timezone: unknown time zone {settings.timezone!r}") from exc
    if settings.default_language not in {"vi", "en"}:
        raise SettingsError("setting default_language: must be vi or en")
    if settings.log_format not in {"json", "text"}:
        raise SettingsError("setting log_format: must be json or text")
    if not 0 < settings.port < 65536:
        raise SettingsError("setting port: must be between 1 and 65535")
    if not 0 < settings.smtp_port < 65536:
        raise SettingsError("setting smtp_port: must be between 1 and 65535")
    if settings.smtp_security not in {"starttls", "tls", "none"}:
        raise SettingsError("setting smtp_security: must be starttls, tls or none")
    if not 0 <= settings.mail_catcher_port < 65536:
        raise SettingsError("setting mail_catcher_port: must be between 0 and 65535")
    if "@" not in settings.mail_from:
        raise SettingsError("setting mail_from: must be an email address")
    if (
        min(settings.monitor_sample_seconds, settings.monitor_save_seconds, settings.monitor_alert_seconds)
        <= 0
    ):
        raise SettingsError(
            "settings monitor_sample_seconds, monitor_save_seconds and monitor_alert_seconds: "
            "must be more than 0"
        )
    if not 0 < settings.record_weak_share <= 1:
        raise SettingsError("setting record_weak_share: must be more than 0 and at most 1")
    if settings.record_weak_dropouts < 1 or settings.record_weak_join_delay_minutes < 0:
        raise SettingsError(
            "settings record_weak_dropouts (at least 1) and record_weak_join_delay_minutes (not negative)"
        )
    if settings.mail_poll_seconds <= 0 or settings.smtp_timeout <= 0:
        raise SettingsError("settings mail_poll_seconds and smtp_timeout: must be more than 0")
    if settings.mail_max_attempts < 1:
        raise SettingsError("setting mail_max_attempts: must be at least 1")
    if settings.scheduler_lease_seconds < 1:
        raise SettingsError("setting scheduler_lease_seconds: must be at least 1")
    if settings.room_capacity < 1:
        raise SettingsError("setting room_capacity: must be at least 1")
    if settings.video_last_n < 1:
        raise SettingsError("setting video_last_n: must be at least 1")
    if settings.signaling_heartbeat_seconds <= 0:
        raise SettingsError("setting signaling_heartbeat_seconds: must be more than 0")
    if not 1 <= settings.readiness_followup_bad_meetings <= settings.readiness_followup_window_meetings <= 50:
        raise SettingsError(
            "settings readiness_followup_bad_meetings and readiness_followup_window_meetings: "
            "need 1 <= bad meetings <= window <= 50"
        )
    if not 1 <= settings.readiness_history_meetings <= 200:
        raise SettingsError("setting readiness_history_meetings: must be between 1 and 200")
    if min(settings.readiness_board_open_minutes, settings.readiness_check_hours) < 0:
        raise SettingsError(
            "settings readiness_board_open_minutes and readiness_check_hours: must not be negative"
        )
    if settings.readiness_board_refresh_seconds <= 0:
        raise SettingsError("setting readiness_board_refresh_seconds: must be more than 0")
    if min(settings.room_open_minutes, settings.room_grace_minutes, settings.reconnect_merge_seconds) < 0:
        raise SettingsError(
            "settings room_open_minutes, room_grace_minutes and reconnect_merge_seconds: must not be negative"
        )


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, then the TOML file, then the environment, then overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get(CONFIG_ENV)
    known = {f.name: f for f in setting_fields()}
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        section = data.get("giaoban", data)
        for key, raw in section.items():
            if key not in known:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            values[key] = _convert(key, known[key].type, raw)
    for name, f in known.items():
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _convert(name, f.type, env[env_name])
    for name, raw in overrides.items():
        if name not in known:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = _convert(name, known[name].type, raw)
    settings = Settings(**values)
    _validate(settings)
    return settings


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, generating and storing one under var_dir if empty."""
    if settings.secret_key:
        return settings
    import secrets

    var = Path(settings.var_dir)
    var.mkdir(parents=True, exist_ok=True)
    key_file = var / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48), encoding="ascii")
        key_file.chmod(0o600)
    return dataclasses.replace(settings, secret_key=key_file.read_text(encoding="ascii").strip())


def settings_markdown() -> str:
    """The settings table for docs/configuration.md."""
    lines = ["| Setting | Environment variable | Default | Meaning |", "| --- | --- | --- | --- |"]
    for f in setting_fields():
        default = f.default
        shown = f"`{default}`" if default != "" else "(empty)"
        lines.append(f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | {shown} | {f.metadata['help']} |")
    return "\n".join(lines) + "\n"
