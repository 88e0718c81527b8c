"""Settings come from the environment; a bad value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from synthstudio.settings import celery_broker, database_from_url, env_bool

REPO_DIR = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "SECRET_KEY",
            "DEBUG",
            "ALLOWED_HOSTS",
            "IMPORT_MAX_MB",
            "SESSION_CACHE_URL",
        }
    }
    environment.update(SYNTHSTUDIO_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", "import synthstudio.settings as s; print('ENGINE', s.DATABASES['default']['ENGINE']); print('DEBUG', s.DEBUG)"],
        cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@db/synth"),
        ("DATABASE_URL", "postgres://user@host:notaport/db"),
        ("DEBUG", "maybe"),
        ("CELERY_BROKER_URL", "kafka://broker:9092"),
        ("CELERY_BROKER_URL", "filesystem://relative/folder"),
        ("IMPORT_MAX_MB", "lots"),
        ("SESSION_CACHE_URL", "memcached://cache:11211"),
    ],
)
def test_it_stops_on_a_bad_value_and_names_the_variable(tmp_path, variable, value):
    result = load_settings(tmp_path, **{variable: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and f"{variable}=" in result.stderr


def test_debug_is_off_unless_the_environment_turns_it_on(tmp_path):
    unset, on = load_settings(tmp_path), load_settings(tmp_path, DEBUG="true")

    assert unset.returncode == 0 and on.returncode == 0, unset.stderr + on.stderr
    assert "DEBUG False" in unset.stdout.splitlines() and "DEBUG True" in on.stdout.splitlines()


def test_it_generates_a_secret_key_with_debug_off_too_and_prefers_the_environment(tmp_path):
    generated = load_settings(tmp_path, DEBUG="false")
    script = "import synthstudio.settings as s; print(s.SECRET_KEY)"
    environment = {**os.environ, "SYNTHSTUDIO_VAR_DIR": str(tmp_path), "DEBUG": "false"}
    key = lambda **env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script],
        cwd=REPO_DIR,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()

    assert generated.returncode == 0, generated.stderr
    assert key(SECRET_KEY="") == (tmp_path / "secret_key").read_text().strip()
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert key(SECRET_KEY="from-the-environment") == "from-the-environment"


def test_it_starts_with_defaults_and_generates_a_secret_key_once(tmp_path):
    first = load_settings(tmp_path)
    key = (tmp_path / "secret_key").read_text()
    second = load_settings(tmp_path)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "ENGINE django.db.backends.sqlite3" in first.stdout
    assert len(key) > 40 and (tmp_path / "secret_key").read_text() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_it_reads_a_postgres_url():
    database = database_from_url("postgres://synth:p%40ss@db.example.org:6543/studio?sslmode=require")

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["USER"], database["PASSWORD"]) == ("studio", "synth", "p@ss")
    assert (database["HOST"], database["PORT"], database["OPTIONS"]) == (
        "db.example.org",
        "6543",
        {"sslmode": "require"},
    )


def test_it_reads_absolute_and_relative_sqlite_urls():
    assert database_from_url("sqlite:////srv/data/studio.db")["NAME"] == "/srv/data/studio.db"
    assert database_from_url("sqlite:///var/dev.db")["NAME"].endswith("/var/dev.db")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("sqlite://")


def test_it_keeps_the_filesystem_broker_in_the_folder_it_is_given(tmp_path):
    url, options = celery_broker(f"filesystem://{tmp_path}/broker")

    assert url == "filesystem://"
    assert options["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert options["control_folder"] == str(tmp_path / "broker" / "control")
    assert celery_broker("redis://localhost:6379/0") == ("redis://localhost:6379/0", {})


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("on", True), ("No", False), ("", True)])
def test_it_reads_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", True) is expected


def test_sessions_are_cached_in_files_of_the_var_folder_or_in_redis_when_asked(tmp_path):
    script = "import synthstudio.settings as s; c = s.CACHES['sessions']; print(s.SESSION_ENGINE, c['BACKEND'], c['LOCATION'])"
    environment = {key: value for key, value in os.environ.items() if key != "SESSION_CACHE_URL"}

    def run(**env: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_DIR,
            env={**environment, "SYNTHSTUDIO_VAR_DIR": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    assert run().split() == [
        "django.contrib.sessions.backends.cached_db",
        "django.core.cache.backends.filebased.FileBasedCache",
        str(tmp_path / "cache" / "sessions"),
    ]
    assert "RedisCache redis://127.0.0.1:6379/3" in run(SESSION_CACHE_URL="redis://127.0.0.1:6379/3")
