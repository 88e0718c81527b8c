"""`manage.py start` (what `make start` runs) stops cleanly on Ctrl-C: the terminal's SIGINT goes to the whole
foreground process group, and the command must stop its worker and web server itself instead of reporting
"The worker stopped (exit 1)" as if the worker had crashed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.worker
def test_ctrl_c_stops_the_worker_and_the_web_server_without_a_crash_message(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'start.sqlite3'}",
        "CELERY_BROKER_URL": f"filesystem://{tmp_path / 'broker'}",
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [sys.executable, "manage.py", "start", "--no-demo", "--addr", f"127.0.0.1:{port}"]
    # a process group of its own, like a shell's foreground job: killpg below is the terminal's Ctrl-C
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()
                time.sleep(0.5)
        else:
            pytest.fail("the web server did not answer within 90 s")
        time.sleep(3)  # the worker is up too
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert "stopped (exit" not in stderr, stderr[-2000:]
    assert process.returncode == 0
    assert "synthstudio stopped." in stdout
    # one warm shutdown, from our SIGTERM: the worker did not get the terminal's SIGINT as well
    assert (stdout + stderr).count("Warm shutdown (MainProcess)") == 1
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
