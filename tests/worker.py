"""A REAL Celery worker process for integration tests (registered in tests/conftest.py via pytest_plugins).

    @pytest.mark.worker
    def test_it_runs_through_a_worker(celery_worker_process, transactional_db):
        ...enqueue work; poll its job row...
        wait_for_job(job, celery_worker_process)   # poll the job row until it ends
        celery_worker_process.kill_hard()      # SIGKILL, like a crash
        celery_worker_process.start()          # a new worker takes over

The worker is `celery -A synthstudio worker --pool=solo` in a subprocess whose environment points at the test
database (SQLite: the test file; PostgreSQL: the test database) and at the same broker as the test process:
CELERY_BROKER_URL from the environment when set (CI: redis://), else a filesystem broker in a tmp folder. While
the fixture is active the test process does not run tasks eagerly, so `.delay()` really goes through the broker.
Tests need committed data the worker can read: the fixture pulls in `transactional_db`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
HEARTBEAT_SECONDS = 1
# A job whose worker died is requeued by the next worker this soon (synthstudio.jobs.recover_stalled_jobs). The
# lease holder's pid is checked on this host, so a slow but live worker is never taken for a dead one.
JOB_STALL_SECONDS = 2
STARTUP_TIMEOUT_SECONDS = 120  # the machine is shared; a cold worker imports Django, Celery and every app


def database_url_for_worker() -> str:
    """A DATABASE_URL naming the database this test process is using right now (the test database)."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError(
                "A worker cannot share an in-memory SQLite database; the test database must be a file."
            )
        return "sqlite:///" + str(Path(name).resolve())  # sqlite:////abs/path
    if connection.vendor == "postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "localhost"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"
    raise RuntimeError(f"No worker database URL for the {connection.vendor} backend.")


class CeleryWorkerProcess:
    """One worker subprocess at a time; start() again after kill_hard()/stop() to get a fresh one."""

    def __init__(self, *, database_url: str, broker_url: str, log_dir: Path) -> None:
        self.database_url = database_url
        self.broker_url = broker_url
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.hostname = ""
        self.log_path: Path | None = None
        self.started = 0

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            CELERY_TASK_ALWAYS_EAGER="false",
            WORKER_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
            JOB_STALL_SECONDS=str(JOB_STALL_SECONDS),
            LLM_ALLOW_PRIVATE_HOSTS="true",  # the local OpenAI-compatible test server is on 127.0.0.1
            DJANGO_SETTINGS_MODULE="synthstudio.settings",
            PYTHONUNBUFFERED="1",
        )
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        return env

    def start(self, *, wait: bool = True, pool: str = "solo") -> None:
        """pool="prefork" (one child) where a test needs what only a process pool does, e.g. time limits."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("A worker is already running; stop or kill it first.")
        self.started += 1
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"
        self.log_path = self.log_dir / f"worker-{self.started}.log"
        celery = Path(sys.executable).with_name("celery")
        command = [
            str(celery), "-A", "synthstudio", "worker", f"--pool={pool}", "--concurrency=1", "--loglevel=INFO",
            "--without-gossip", "--without-mingle", "-n", self.hostname,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_DIR, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if wait:
            self.wait_until_alive()

    def wait_until_alive(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Block until this worker's WorkerHeartbeat row appears (the worker is consuming)."""
        from django.db import close_old_connections

        from synthstudio.models import WorkerHeartbeat

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"The Celery worker exited during start-up:\n{self.log_tail()}")
            close_old_connections()
            if WorkerHeartbeat.objects.filter(hostname=self.hostname).exists():
                return
            time.sleep(0.2)
        raise RuntimeError(f"No heartbeat from the Celery worker after {timeout:.0f} s:\n{self.log_tail()}")

    def kill_hard(self) -> None:
        """SIGKILL the worker, like a crash: no shutdown handlers run, its heartbeat row stays behind."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); SIGKILL if it does not end within 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill_hard()

    def restart_after_crash(self) -> None:
        self.kill_hard()
        self.start()

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no worker log)"
        return self.log_path.read_text(errors="replace")[-chars:]


def wait_for_job(job, worker: CeleryWorkerProcess, *, timeout: float = 180):
    """Poll a BackgroundJob row until it has finished; fail with the worker's log if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.3)
    raise AssertionError(
        f"{type(job).__name__} {job.pk} still {job.status}; worker log:\n{worker.log_tail()}"
    )


def _reset_producer_pools(app) -> None:
    """Forget cached broker connections so a changed broker_url takes effect in this process."""
    # Not force_close_all(): kombu keeps pools in a global registry and would hand back the closed one.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path, settings) -> Iterator[CeleryWorkerProcess]:
    from synthstudio import celery_app
    from synthstudio.settings import filesystem_broker_options

    broker_from_env = os.environ.get("CELERY_BROKER_URL", "")
    if broker_from_env and not broker_from_env.startswith("filesystem://"):
        broker_url, transport_options = broker_from_env, {}
    else:
        folder = tmp_path / "broker"
        broker_url, transport_options = f"filesystem://{folder}", filesystem_broker_options(folder)

    saved = {
        "broker_url": celery_app.conf.broker_url,
        "broker_transport_options": celery_app.conf.broker_transport_options,
        "task_always_eager": celery_app.conf.task_always_eager,
    }
    celery_app.conf.broker_url = "filesystem://" if broker_url.startswith("filesystem://") else broker_url
    celery_app.conf.broker_transport_options = transport_options
    celery_app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WORKER_HEARTBEAT_SECONDS = HEARTBEAT_SECONDS
    settings.JOB_STALL_SECONDS = JOB_STALL_SECONDS
    _reset_producer_pools(celery_app)
    if not broker_url.startswith("filesystem://"):
        celery_app.control.purge()  # messages left by earlier tests would name rows that no longer exist

    worker = CeleryWorkerProcess(
        database_url=database_url_for_worker(), broker_url=broker_url, log_dir=tmp_path
    )
    try:
        worker.start()
        yield worker
    finally:
        worker.kill_hard()
        for name, value in saved.items():
            setattr(celery_app.conf, name, value)
        _reset_producer_pools(celery_app)
