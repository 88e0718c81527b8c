"""Benchmark the review queue over real HTTP: N concurrent simulated annotators against a multi-threaded server.

    python manage.py bench_review --annotators 20 --items 2000 --overlap 1
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python manage.py bench_review --overlap 3
    DATABASE_URL=... python manage.py bench_review --annotators 100 --think-ms 5000 --items 4000

It creates a throwaway database (a separate SQLite file under var/ by default; with DATABASE_URL pointing at
PostgreSQL, a new database `bench_review_<pid>` on that server), migrates it, creates a project with `items`
routed items, starts gunicorn (4 sync workers by default; Django's ThreadedWSGIServer if gunicorn is missing)
on a loopback port, and lets every annotator log in and then answer until the queue is empty: each POST of an
answer returns the next item (the htmx flow of the workbench). The invariants are counted from the database
afterwards, not assumed. Prints one JSON line; the throwaway database is removed at the end.

Two modes:

- `--think-ms 0` (the default): a closed loop with no pauses, every annotator answers as soon as the next item
  arrives. A stress test: latency ≈ annotators / throughput, so it says how much the server can serve, not
  how fast it feels. `offered_answers_per_s` is null (the demand is whatever is served).
- `--think-ms MEAN`: every annotator reads each item for an exponentially distributed time (mean MEAN ms,
  seeded by `--seed` per annotator) before answering, as people do. `offered_answers_per_s` = annotators ×
  1000 / MEAN is the rate they would answer at if the server took no time.

`served_answers_per_s` counts the answers stored while every annotator was still at work, i.e. until the first
one found the queue empty: after that fewer people answer (the queue drains) and the overall `answers_per_s`
(answers / seconds, the key of earlier runs) falls below what the server sustained. Served close to offered and
a low p95 say the server keeps up with that many people. Latencies (`p50_ms`, `p95_ms`, `p99_ms`) are of the
answer-and-next POST. `cpu_ms_per_answer` splits the machine's work while the annotators answer: the server
processes, the PostgreSQL backends (SQLite works inside the server) and the simulated annotators (this
process), from /proc.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import quantiles
from urllib.parse import quote, urlencode, urlparse, urlunparse

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count, F, Q

from annotation.models import Assignment, AssignmentStatus, ReviewTask, TaskKind
from annotation.review import queue as review
from synthstudio.models import (
    HumanAnnotation,
    HumanSource,
    LLMAnnotation,
    Membership,
    Project,
    Role,
    Sample,
    text_hash,
)
from synthstudio.services import codebook_create_version

PASSWORD = "bench-review-password"
LABELS = [
    {"name": "positive", "description": "The reviewer liked it."},
    {"name": "negative", "description": "The reviewer disliked it."},
    {"name": "mixed", "description": "Both praise and criticism."},
]
ACTION = re.compile(r'id="answer-form"[^>]*?action="([^"]+)"', re.S)
SUBMISSION = re.compile(r'name="submission_id" value="([0-9a-f]+)"')
LOGIN_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
EMPTY_QUEUE = "Nothing left in your queue"


@dataclass
class AnnotatorRun:
    username: str
    latencies_ms: list[float] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)  # perf_counter() when each answer was acknowledged
    finished_at: float = float("inf")  # when the queue was empty for this annotator (or they gave up)
    errors: list[str] = field(default_factory=list)


class Browserless:
    """One annotator's HTTP session: a keep-alive connection and the cookies the server set."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict, str]:
        all_headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        payload = None
        if body is not None:
            payload = urlencode(body)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=payload, headers=all_headers)
                response = self.connection.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection: reconnect and send again (idempotent
                # by submission id, which is exactly what the queue promises)
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, dict(response.getheaders()), text

    def close(self) -> None:
        self.connection.close()


def think_seconds(rng: random.Random, mean_ms: float) -> float:
    """How long an annotator reads an item before answering: exponential with mean `mean_ms` (independent
    people each answering at their own pace; memoryless, the usual model of think time), 0 in the closed loop."""
    return rng.expovariate(1000.0 / mean_ms) if mean_ms > 0 else 0.0


def annotate_until_empty(
    run: AnnotatorRun,
    host: str,
    port: int,
    project_id: int,
    start: threading.Barrier,
    *,
    think_ms: float = 0.0,
    rng: random.Random | None = None,
) -> None:
    rng = rng or random.Random(run.username)
    session = Browserless(host, port)
    try:
        status, _, page = session.request("GET", "/login/")
        token = LOGIN_CSRF.search(page)
        if status != 200 or token is None:
            run.errors.append(f"login page: HTTP {status}")
            return
        status, _, _ = session.request(
            "POST",
            "/login/",
            {"username": run.username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        )
        if status != 302:
            run.errors.append(f"login: HTTP {status}")
            return
        start.wait()
        status, _, page = session.request(
            "GET", f"/projects/{project_id}/review/", headers={"HX-Request": "true"}
        )
        labels = [label["name"] for label in LABELS]
        turn = 0
        while status == 200 and EMPTY_QUEUE not in page:
            action, submission = ACTION.search(page), SUBMISSION.search(page)
            if action is None or submission is None:
                run.errors.append("no answer form in the workbench")
                return
            assignment_id = int(action.group(1).rstrip("/").split("/")[-2])
            time.sleep(think_seconds(rng, think_ms))
            started = time.perf_counter()
            status, _, page = session.request(
                "POST",
                action.group(1),
                {
                    "label": labels[turn % len(labels)],
                    "submission_id": submission.group(1),
                    "seconds_spent": "0",
                },
                headers={"HX-Request": "true", "X-CSRFToken": session.cookies.get("csrftoken", "")},
            )
            answered = time.perf_counter()
            run.latencies_ms.append((answered - started) * 1000)
            if status == 200 and "wb-error" not in page:
                run.acknowledged.append(assignment_id)
                run.answered_at.append(answered)
            elif status == 200:
                run.errors.append(re.sub(r"\s+", " ", page.split("wb-error", 1)[1][:200]))
            turn += 1
        if status != 200:
            run.errors.append(f"workbench: HTTP {status}")
    except Exception as error:  # counted in the report, never hidden
        run.errors.append(f"{type(error).__name__}: {error}")
    finally:
        run.finished_at = time.perf_counter()
        session.close()


def cpu_seconds_by_role() -> dict[str, float]:
    """CPU seconds used so far by the server's processes (gunicorn), the local database's processes (PostgreSQL
    backends; SQLite runs inside the server) and this process (the simulated annotators), read from /proc —
    where the time per answer goes. Zeros where /proc is missing."""
    used = {"server": 0.0, "database": 0.0, "clients": 0.0}
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        if entry.name == str(os.getpid()):
            used["clients"] += seconds
        elif "gunicorn" in command and "synthstudio.wsgi" in command:
            used["server"] += seconds
        elif command.startswith("postgres:"):
            used["database"] += seconds
    return used


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Command(BaseCommand):
    help = "Benchmark the review queue over HTTP with concurrent simulated annotators; prints one JSON line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--annotators", type=int, default=20)
        parser.add_argument("--items", type=int, default=2000)
        parser.add_argument("--overlap", type=int, default=1, help="Distinct annotators per item.")
        parser.add_argument(
            "--think-ms",
            type=float,
            default=0.0,
            help="Mean time (ms, exponential) an annotator reads an item before answering; 0: closed loop, no pauses.",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the annotators' think times.")
        # The README's deployment (gunicorn -w 4, sync workers): a free process takes the next request. gthread
        # workers keep each keep-alive connection in the process that accepted it, and with 2 × 4 the 20
        # connections split unevenly (9/11 measured: median 98 ms vs 125 ms per annotator). Over several runs on
        # the 2-core machine both gave p95 140–360 ms; run-to-run variance there is about ±30%.
        parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
        parser.add_argument(
            "--threads", type=int, default=4, help="Threads per gunicorn worker (gthread only)."
        )
        parser.add_argument(
            "--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn worker class."
        )
        parser.add_argument("--server", choices=["gunicorn", "django"], default="gunicorn")

    def handle(
        self,
        *args,
        annotators: int,
        items: int,
        overlap: int,
        think_ms: float,
        seed: int,
        workers: int,
        threads: int,
        worker_class: str,
        server: str,
        **options,
    ) -> None:
        if annotators < overlap:
            raise CommandError(
                "--overlap cannot exceed --annotators: an item needs that many distinct people."
            )
        if think_ms < 0:
            raise CommandError("--think-ms is a mean time in milliseconds: 0 or more.")
        database_url = self.throwaway_database()
        try:
            call_command("migrate", verbosity=0, interactive=False)
            project = self.make_project(annotators=annotators, items=items, overlap=overlap)
            runs = [AnnotatorRun(username=f"bench_annotator_{index:02d}") for index in range(annotators)]
            with self.serving(
                database_url, server=server, workers=workers, threads=threads, worker_class=worker_class
            ) as (host, port):
                barrier = threading.Barrier(annotators + 1)
                clients = [
                    threading.Thread(
                        target=annotate_until_empty,
                        args=(run, host, port, project.pk, barrier),
                        kwargs={"think_ms": think_ms, "rng": random.Random(f"{seed}:{run.username}")},
                    )
                    for run in runs
                ]
                for client in clients:
                    client.start()
                try:
                    barrier.wait(timeout=300)
                except threading.BrokenBarrierError:
                    raise CommandError(
                        "Not every annotator could log in: " + "; ".join(e for r in runs for e in r.errors)
                    ) from None
                cpu_before = cpu_seconds_by_role()
                began = time.perf_counter()
                for client in clients:
                    client.join()
                seconds = time.perf_counter() - began
                cpu_used = {role: cpu_seconds_by_role()[role] - cpu_before[role] for role in cpu_before}
            report = self.report(
                project=project,
                runs=runs,
                began=began,
                seconds=seconds,
                overlap=overlap,
                items=items,
                think_ms=think_ms,
            )
            if report["answers"]:
                report["cpu_ms_per_answer"] = {
                    role: round(used * 1000 / report["answers"], 2) for role, used in cpu_used.items()
                }
            self.stdout.write(json.dumps(report))
        finally:
            self.drop_throwaway_database()

    # ---------------------------------------------------------------- database

    def throwaway_database(self) -> str:
        """Point this process at a new, empty database and return its URL for the server process."""
        config = settings.DATABASES["default"]
        self.original_name = config["NAME"]
        connection.close()
        if connection.vendor == "sqlite":
            path = Path(settings.VAR_DIR) / f"bench-review-{os.getpid()}.sqlite3"
            for leftover in self.sqlite_files(path):
                leftover.unlink(missing_ok=True)
            config["NAME"] = str(path)
            self.cleanup = lambda: [f.unlink(missing_ok=True) for f in self.sqlite_files(path)]
            return f"sqlite:///{path}"
        if connection.vendor == "postgresql":
            name = f"bench_review_{os.getpid()}"
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cursor.execute(f'CREATE DATABASE "{name}"')
            config["NAME"] = name
            self.cleanup = lambda: self.drop_postgres(name)
            parsed = urlparse(os.environ["DATABASE_URL"])
            return urlunparse(parsed._replace(path="/" + quote(name)))
        raise CommandError(f"bench_review supports SQLite and PostgreSQL, not {connection.vendor}.")

    @staticmethod
    def sqlite_files(path: Path) -> list[Path]:
        return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]

    def drop_postgres(self, name: str) -> None:
        settings.DATABASES["default"]["NAME"] = self.original_name
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_throwaway_database(self) -> None:
        connection.close()
        cleanup = getattr(self, "cleanup", None)
        if cleanup is not None:
            cleanup()
        settings.DATABASES["default"]["NAME"] = self.original_name

    def make_project(self, *, annotators: int, items: int, overlap: int) -> Project:
        users = get_user_model()
        lead = users.objects.create_user("bench_lead", password=PASSWORD)
        project = Project.objects.create(name="bench_review", created_by=lead, reservation_minutes=30)
        Membership.objects.create(project=project, user=lead, role=Role.LEAD)
        codebook_create_version(
            project=project,
            user=lead,
            task_description="Sentiment of a review.",
            guidelines="Judge the reviewer.",
            labels=LABELS,
        )
        template = users(username="template")
        template.set_password(PASSWORD)  # hash once: PBKDF2 per user would dominate set-up time
        people = users.objects.bulk_create(
            users(username=f"bench_annotator_{index:02d}", password=template.password)
            for index in range(annotators)
        )
        Membership.objects.bulk_create(
            Membership(project=project, user=user, role=Role.ANNOTATOR) for user in people
        )
        texts = [
            f"Review {index}: the plot was {'gripping' if index % 2 else 'slow'} and the cast {index % 7} stars."
            for index in range(items)
        ]
        samples = Sample.objects.bulk_create(
            Sample(project=project, text=text, text_hash=text_hash(text)) for text in texts
        )
        LLMAnnotation.objects.bulk_create(
            LLMAnnotation(
                sample=sample,
                label="positive",
                distribution={"positive": 0.6, "negative": 0.3, "mixed": 0.1},
                confidence=0.6,
                method="offline",
                rationale="offline benchmark suggestion",
            )
            for sample in samples
        )
        review.review_gold_rate_set(project=project, gold_rate=0.0)
        review.review_tasks_create(
            project=project,
            samples_with_reasons=[
                (sample, "benchmark", float(items - index)) for index, sample in enumerate(samples)
            ],
            kind=TaskKind.ROUTED,
            required_answers=overlap,
            strategy="benchmark",
        )
        return project

    # ---------------------------------------------------------------- server

    def serving(self, database_url: str, *, server: str, workers: int, threads: int, worker_class: str):
        command = self

        class Serving:
            def __enter__(self):
                self.port = free_port()
                self.process = None
                self.thread_server = None
                if server == "gunicorn" and command.gunicorn_available():
                    env = {
                        **os.environ,
                        "DATABASE_URL": database_url,
                        "DEBUG": "false",
                        "SECRET_KEY": secrets.token_urlsafe(40),
                        "SESSION_COOKIE_SECURE": "false",
                        "CSRF_COOKIE_SECURE": "false",
                        "LOG_LEVEL": "WARNING",
                    }
                    self.process = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "gunicorn",
                            "synthstudio.wsgi:application",
                            "--bind",
                            f"127.0.0.1:{self.port}",
                            "--worker-class",
                            worker_class,
                            "--workers",
                            str(workers),
                            "--threads",
                            str(threads),
                            "--keep-alive",
                            "30",
                            "--log-level",
                            "warning",
                        ],
                        cwd=settings.BASE_DIR,
                        env=env,
                    )
                else:
                    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
                    from django.core.wsgi import get_wsgi_application

                    class QuietHandler(WSGIRequestHandler):
                        def log_message(self, *args) -> None:
                            pass

                    self.thread_server = ThreadedWSGIServer(
                        ("127.0.0.1", self.port), QuietHandler, allow_reuse_address=True
                    )
                    self.thread_server.set_app(get_wsgi_application())
                    threading.Thread(target=self.thread_server.serve_forever, daemon=True).start()
                command.wait_until_up(self.port, self.process)
                return "127.0.0.1", self.port

            def __exit__(self, *exc) -> None:
                if self.process is not None:
                    self.process.send_signal(signal.SIGTERM)
                    try:
                        self.process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        self.process.kill()
                if self.thread_server is not None:
                    self.thread_server.shutdown()
                    self.thread_server.server_close()

        return Serving()

    @staticmethod
    def gunicorn_available() -> bool:
        try:
            import gunicorn  # noqa: F401
        except ImportError:
            return False
        return True

    @staticmethod
    def wait_until_up(port: int, process) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise CommandError(f"The server exited with code {process.returncode}.")
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/login/")
                if probe.getresponse().status == 200:
                    probe.close()
                    return
            except OSError:
                time.sleep(0.2)
        raise CommandError("The server did not answer on /login/ within 60 s.")

    # ---------------------------------------------------------------- report

    def report(
        self,
        *,
        project: Project,
        runs: list[AnnotatorRun],
        began: float,
        seconds: float,
        overlap: int,
        items: int,
        think_ms: float,
    ) -> dict:
        answers = HumanAnnotation.objects.filter(sample__project=project, source=HumanSource.REVIEW)
        answer_count = answers.count()
        per_item = ReviewTask.objects.filter(project=project).annotate(
            answered=Count("assignments", filter=Q(assignments__status=AssignmentStatus.ANSWERED))
        )
        double_assignments = per_item.filter(answered__gt=F("required_answers")).count()
        exact = per_item.filter(answered=overlap).count()
        duplicate_groups = answers.values("sample_id", "annotator_id").annotate(n=Count("id")).filter(n__gt=1)
        duplicate_answers = sum(group["n"] - 1 for group in duplicate_groups)
        acknowledged = {assignment_id for run in runs for assignment_id in run.acknowledged}
        stored = set(
            Assignment.objects.filter(
                pk__in=acknowledged, status=AssignmentStatus.ANSWERED, answer__isnull=False
            ).values_list("pk", flat=True)
        )
        latencies = sorted(latency for run in runs for latency in run.latencies_ms)
        cuts = (
            quantiles(latencies, n=100, method="inclusive")
            if len(latencies) > 1
            else latencies * 99 or [0.0] * 99
        )
        errors = [error for run in runs for error in run.errors]
        all_at_work = min(run.finished_at for run in runs) - began
        served_while_all_worked = sum(
            1 for run in runs for at in run.answered_at if at - began <= all_at_work
        )
        return {
            "annotators": len(runs),
            "think_ms": think_ms,
            "answers": answer_count,
            "seconds": round(seconds, 2),
            "offered_answers_per_s": round(len(runs) * 1000.0 / think_ms, 1) if think_ms else None,
            "served_answers_per_s": round(served_while_all_worked / all_at_work, 1)
            if all_at_work > 0
            else 0.0,
            "answers_per_s": round(answer_count / seconds, 1) if seconds else 0.0,
            "p50_ms": round(cuts[49], 1),
            "p95_ms": round(cuts[94], 1),
            "p99_ms": round(cuts[98], 1),
            "double_assignments": double_assignments,
            "lost_answers": len(acknowledged - stored),
            "duplicate_answers": duplicate_answers,
            "database": connection.vendor,
            "overlap": overlap,
            "items": items,
            "items_with_exact_overlap": exact,
            "incomplete_items": ReviewTask.objects.filter(project=project, is_open=True).count(),
            "client_errors": len(errors),
            "first_error": errors[0] if errors else "",
        }
