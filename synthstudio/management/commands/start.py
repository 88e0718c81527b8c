"""Start synthstudio on one machine: a Celery worker and the web server, with the demo on first start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the web server and a Celery worker together (Ctrl-C stops both). Creates the demo on first start."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-demo", action="store_true", help="Do not create the demo project on first start."
        )

    def handle(self, *args, addr: str, no_demo: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo and not get_user_model().objects.exists():
            call_command("demo")
        if not settings.DEBUG:
            # runserver serves static/ only with DEBUG on; `make start` exports DEBUG=true.
            self.stderr.write(
                "DEBUG is off: pages will have no CSS or JavaScript. Run `make start` or set DEBUG=true."
            )
        if not settings.LLM_BASE_URL:
            self.stdout.write(
                "No LLM_BASE_URL set: generation and labelling use the offline providers (marked 'offline')."
            )
        celery = os.path.join(os.path.dirname(sys.executable), "celery")
        # Each child in a session of its own: Ctrl-C in the terminal reaches only this process, which stops the
        # two in order. Sharing the terminal's process group, the worker got the SIGINT too, exited 1 and
        # was reported below as a crash ("The worker stopped (exit 1)").
        worker = subprocess.Popen(
            [celery, "-A", "synthstudio", "worker", "--loglevel=INFO", "--concurrency=2", "--pool=prefork"],
            start_new_session=True,
        )
        self.stdout.write(self.style.SUCCESS(f"synthstudio: http://{addr}/  (worker pid {worker.pid})"))
        signal.signal(signal.SIGTERM, _raise_interrupt)
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", addr], start_new_session=True
        )
        try:
            while True:
                for name, process in (("worker", worker), ("web server", web)):
                    code = process.poll()
                    if code is not None:
                        self.stderr.write(f"The {name} stopped (exit {code}); stopping synthstudio.")
                        return
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("Stopping synthstudio (the worker finishes its current task first)…")
        finally:
            _stop(web, worker)
        self.stdout.write("synthstudio stopped.")


def _stop(*processes: subprocess.Popen) -> None:
    """SIGTERM (the worker's warm shutdown), then SIGKILL after 20 s; a second Ctrl-C kills at once."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    try:
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    except KeyboardInterrupt:
        for process in processes:
            if process.poll() is None:
                process.kill()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
