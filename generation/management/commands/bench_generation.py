"""Benchmark: a real generation run through a real Celery worker against the local test server, with the
worker SIGKILLed about half-way and the run resumed by a new worker. Prints one JSON line.

    python manage.py bench_generation --requests 1000 --latency-ms 200 --concurrency 32
    python manage.py bench_generation --requests 3000 --concurrency 256 --workers 2   # a sharded run

`--workers N` (N > 1) starts N worker processes and a run of N shards (generation.services.shards), each
shard under 1/N of the endpoint's concurrency; at the kill point one worker (the first started) is killed, a
replacement is started and the run resumed, as with one worker.

By default it runs in a child process pointed at a throwaway SQLite database and a filesystem broker in a
temporary folder (`--in-place` uses the configured database and broker instead).

What is measured (honestly):
- seconds: active sending time = (first request received by the server → the kill) + (first request after
  the resume → last answer sent). Worker start-up and the gap between kill and resume are excluded; the
  in-flight requests lost at the kill are included. With `--workers` > 1 the surviving workers keep sending
  during that gap: the answers they got in it are left out of the requests counted
  (`answered_in_gap_not_counted`), as the gap's time is.
- throughput_rps = requests / seconds; ideal_rps = concurrency / latency; efficiency = their ratio.
- duplicate_requests_after_resume: requests received after the resume for items whose result had been
  committed before the kill (a finished call sent again). `resent_in_flight` counts the requests that were
  in flight at the kill, or answered but not yet committed, and had to be sent again;
  `late_arrivals_from_killed_worker` the requests the killed worker sent that the server read only after
  the kill (a loaded machine delays the server's threads).
- samples: generated samples of the run; `items_without_exactly_one_sample` must be 0.
- diagnostics: `worker_cpu_ms_per_request` (worker CPU including start-up, over all requests),
  `load_average_1min` of the machine, `server_answer_ms_median` (the test server's own answer time). At
  32 × 5 requests a second the worker needs about that many ms × 0.16 of a core; on a machine whose cores
  are busy with other work the efficiency falls accordingly.

`--send-only` measures the ceiling of the machine for the send path: the run's planned requests (same prompts,
parameters and schema) sent by `generation.llm.client.complete_many` — the openai client, the outbound guard,
reading and checking each answer — in `--workers` forked processes, each with its share of the concurrency as a
shard has, against the same test server; no Celery, no database writes, no kill. A full run cannot beat it on
the same machine. Besides the efficiency it prints `sender_cpu_ms_per_request` (each sender process),
`server_cpu_ms_per_request` (this process, where the test server lives), `cores` and `cores_busy` (all that
CPU over the sending time): `cores_busy` near `cores` means the machine's CPU, not the code's waiting, bounds
the figure.

    python manage.py bench_generation --send-only --requests 3000 --concurrency 256 --workers 2
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Benchmark a generation run through a real worker (killed and resumed half-way); prints one JSON line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--requests", type=int, default=1000)
        parser.add_argument("--latency-ms", type=float, default=200.0)
        parser.add_argument("--concurrency", type=int, default=32)
        parser.add_argument(
            "--kill-at", type=float, default=0.5, help="Fraction done when the worker is killed."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="Worker processes; more than 1 runs a sharded run of that many shards.",
        )
        parser.add_argument("--in-place", action="store_true", help="Use the configured database and broker.")
        parser.add_argument(
            "--send-only",
            action="store_true",
            help="Only the send path (complete_many in --workers processes; no Celery, no writes, no kill).",
        )
        parser.add_argument("--timeout", type=float, default=600.0)

    # the options the benchmark itself takes (Benchmark's keywords), passed on to the throwaway child as given
    BENCHMARK_OPTIONS = ("requests", "latency_ms", "concurrency", "kill_at", "timeout", "workers")

    def handle(self, *args, in_place: bool, send_only: bool = False, **options) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        chosen = {name: options[name] for name in self.BENCHMARK_OPTIONS}
        if not in_place:
            self.stdout.write(self.run_in_throwaway_environment(chosen, send_only))
            return
        benchmark = Benchmark(**chosen, log=self.stderr.write)
        result = benchmark.run_send_only() if send_only else benchmark.run()
        self.stdout.write(json.dumps(result))

    def run_in_throwaway_environment(self, chosen: dict, send_only: bool) -> str:
        with tempfile.TemporaryDirectory(prefix="bench-generation-") as folder:
            env = dict(os.environ)
            env.update(
                DATABASE_URL=f"sqlite:///{folder}/bench.sqlite3",
                CELERY_BROKER_URL=f"filesystem://{folder}/broker",
                CELERY_TASK_ALWAYS_EAGER="false",
                SYNTHSTUDIO_BENCH_FOLDER=folder,
                LOG_LEVEL="WARNING",
                # production-like: DEBUG on would record every SQL query in memory in the worker
                DEBUG="false",
                SECRET_KEY=os.environ.get("SECRET_KEY") or uuid.uuid4().hex + uuid.uuid4().hex,
                LLM_ALLOW_PRIVATE_HOSTS="true",  # the benchmark's own test server listens on 127.0.0.1
            )
            command = [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "bench_generation",
                "--in-place",
                *(
                    part
                    for name, value in chosen.items()
                    for part in (f"--{name.replace('_', '-')}", str(value))
                ),
                *(["--send-only"] if send_only else []),
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
            if done.returncode != 0:
                raise CommandError(f"The benchmark failed:\n{done.stderr[-4000:]}")
            return done.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def collector_paused():
    """No garbage collection in this process while the test server answers. It stands in for a remote endpoint
    but lives here, beside Django and the migrations' leftovers: a full collection stopped it answering for
    ~200 ms (measured), a pause no remote endpoint would add. Collected before, resumed after."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


class Benchmark:
    def __init__(
        self,
        *,
        requests: int,
        latency_ms: float,
        concurrency: int,
        kill_at: float,
        timeout: float,
        log,
        workers: int = 1,
    ) -> None:
        self.requests, self.latency_ms, self.concurrency = requests, latency_ms, concurrency
        self.kill_at, self.timeout, self.log, self.worker_count = kill_at, timeout, log, workers
        self.folder = Path(
            os.environ.get("SYNTHSTUDIO_BENCH_FOLDER") or tempfile.mkdtemp(prefix="bench-generation-")
        )
        self.workers: list[subprocess.Popen] = []
        self.worker_number = 0

    # worker processes ------------------------------------------------------------------------------------
    def start_worker(self) -> None:
        self.worker_number += 1
        celery = Path(sys.executable).with_name("celery")
        log = open(self.folder / f"worker-{self.worker_number}.log", "wb")  # noqa: SIM115 - the child owns it
        worker = subprocess.Popen(
            [
                str(celery),
                "-A",
                "synthstudio",
                "worker",
                "--pool=solo",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{self.worker_number}-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=settings.BASE_DIR,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)

    def worker_cpu_seconds(self, workers: list[subprocess.Popen]) -> float:
        """User + system CPU these live worker processes (and their finished children) have used so far
        (Linux /proc)."""
        total = 0.0
        for worker in workers:
            try:
                fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
                # utime + stime, and cutime + cstime: the CPU of its reaped children (the batch sender)
                total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                continue
        return total

    def kill_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_worker(worker)

    def worker_log(self) -> str:
        path = self.folder / f"worker-{self.worker_number}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def a_worker_exited(self) -> bool:
        return any(worker.poll() is not None for worker in self.workers)

    # the run ---------------------------------------------------------------------------------------------
    def setup(self, server):
        from django.contrib.auth import get_user_model

        from generation.models import LLMEndpoint
        from generation.prompts import DEFAULT_TEMPLATE
        from generation.services.configs import config_create_version
        from synthstudio.services import codebook_create_version, project_create

        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:6]}")
        project = project_create(name="bench_generation", user=user)
        codebook_create_version(
            project=project,
            user=user,
            task_description="Classify the sentiment of a product review.",
            guidelines="",
            labels=[
                {"name": "positive", "description": "Liked it."},
                {"name": "negative", "description": "Did not."},
            ],
        )
        endpoint = LLMEndpoint.objects.create(
            project=project,
            name="bench",
            base_url=server.base_url,
            model="test-model",
            max_concurrency=self.concurrency,
            timeout_seconds=30,
            max_retries=4,
        )
        config = config_create_version(
            project=project,
            user=user,
            name="bench",
            values={
                "endpoint": endpoint,
                "template": DEFAULT_TEMPLATE,
                "target_count": self.requests,
                "dimensions": [
                    {"name": "topic", "values": ["battery", "screen", "price", "delivery", "support"]}
                ],
            },
        )
        return user, config

    def wait_for(self, run, condition, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if condition(run):
                return
            if self.a_worker_exited():
                raise CommandError(f"The worker exited while waiting for {what}:\n{self.worker_log()}")
            time.sleep(0.05)
        raise CommandError(
            f"Timed out waiting for {what}; run {run.status} {run.done}/{run.total}.\n{self.worker_log()}"
        )

    def run_send_only(self) -> dict:
        """The send path alone (see the module docstring): the run's planned requests, split as shards split
        them, sent by forked processes; the bench process hosts the test server and waits."""
        import multiprocessing

        import aiohttp  # noqa: F401 - imported once before the fork, as the run's sender does
        import openai  # noqa: F401

        from generation.llm.client import EndpointSettings, LLMRequest
        from generation.models import GenerationItem
        from generation.services.planning import generation_context, request_params
        from generation.services.runs import run_start
        from generation.testing.openai_server import OpenAICompatibleTestServer

        with OpenAICompatibleTestServer(latency_ms=self.latency_ms) as server:
            user, config = self.setup(server)
            run = run_start(config=config, user=user, enqueue_task=False)
            schema = generation_context(config).schema
            requests = [
                LLMRequest(
                    key=item.pk,
                    messages=item.messages,
                    params=request_params(config, item.index),
                    json_schema=schema,
                )
                for item in GenerationItem.objects.filter(run=run).order_by("index")
            ]
            endpoint = EndpointSettings.from_endpoint(config.endpoint).share_concurrency(self.worker_count)
            context = multiprocessing.get_context("fork")
            start, reports = context.Event(), context.Queue()
            shares = [requests[number :: self.worker_count] for number in range(self.worker_count)]
            senders = [
                context.Process(target=_send_share, args=(endpoint, share, start, reports), daemon=True)
                for share in shares
            ]
            for sender in senders:
                sender.start()
            with collector_paused():
                try:
                    before = os.times()
                    start.set()
                    results = [reports.get(timeout=self.timeout) for _ in senders]
                    after = os.times()
                finally:
                    for sender in senders:
                        sender.join(timeout=30)
            received, completed = list(server.received_at), list(server.completed_at)
            answer_seconds = sorted(server.answer_seconds)

        seconds = max(completed) - min(received)
        ideal = self.concurrency / (self.latency_ms / 1000.0)
        sender_cpu = [cpu for _, cpu in results]
        server_cpu = (after.user + after.system) - (before.user + before.system)
        return {
            "mode": "send-only",
            "requests": self.requests,
            "answered_ok": sum(ok for ok, _ in results),
            "requests_seen_by_server": len(received),
            "seconds": round(seconds, 3),
            "throughput_rps": round(self.requests / seconds, 2),
            "ideal_rps": round(ideal, 2),
            "efficiency": round(self.requests / seconds / ideal, 3),
            "senders": self.worker_count,
            "sender_cpu_ms_per_request": [
                round(1000 * cpu / max(1, len(share)), 3)
                for share, cpu in zip(shares, sender_cpu, strict=True)
            ],
            "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(received)), 3),
            "cores": os.cpu_count(),
            "cores_busy": round((sum(sender_cpu) + server_cpu) / seconds, 2),
            "server_answer_ms_median": round(1000 * answer_seconds[len(answer_seconds) // 2], 1)
            if answer_seconds
            else None,
        }

    def run(self) -> dict:
        from generation.models import GenerationItem, ItemStatus
        from generation.services.runs import run_resume, run_start
        from generation.testing.openai_server import OpenAICompatibleTestServer
        from synthstudio.models import Sample

        with OpenAICompatibleTestServer(latency_ms=self.latency_ms) as server:
            user, config = self.setup(server)
            with collector_paused():
                try:
                    for _ in range(self.worker_count):
                        self.start_worker()
                    run = run_start(config=config, user=user, shards=self.worker_count)
                    kill_when = max(1, int(self.requests * self.kill_at))
                    self.wait_for(run, lambda r: r.done + r.failed >= kill_when, "the first half")
                    killed = self.workers[0]
                    cpu_seconds = self.worker_cpu_seconds([killed])
                    self.workers.remove(killed)
                    self.kill_worker(killed)
                    killed_at = time.monotonic()
                    done_before_kill = set(
                        GenerationItem.objects.filter(run=run, status=ItemStatus.DONE).values_list(
                            "index", flat=True
                        )
                    )
                    seen_before_kill = server.request_count
                    self.start_worker()
                    resumed_at = (
                        time.monotonic()
                    )  # the new worker is up; nothing of the killed one is still in flight
                    run_resume(run=run)
                    self.wait_for(run, lambda r: r.is_finished, "the resumed run to finish")
                    cpu_seconds += self.worker_cpu_seconds(self.workers)
                finally:
                    self.stop_workers()
            bodies, received, completed = (
                list(server.requests),
                list(server.received_at),
                list(server.completed_at),
            )
            answer_seconds = sorted(server.answer_seconds)

        indices_before = {body.get("seed", 0) - config.seed for body in bodies[:seen_before_kill]}
        after = [
            (body.get("seed", 0) - config.seed)
            for body, at in zip(bodies, received, strict=True)
            if at > resumed_at
        ]
        duplicates = sum(1 for index in after if index in done_before_kill)
        resent_in_flight = sum(
            1 for index in after if index in indices_before and index not in done_before_kill
        )
        # requests the server only got to read after the kill, sent by the killed worker before it died
        late_from_killed_worker = sum(1 for at in received if killed_at < at <= resumed_at)
        first_after = min((at for at in received if at > resumed_at), default=resumed_at)
        active = (killed_at - received[0]) + (max(completed) - first_after)
        # With several workers the survivors keep sending while the replacement starts: that gap's time is
        # excluded above, so the answers they got in it are excluded from the work done too.
        answered_in_gap = sum(1 for at in completed if killed_at < at <= first_after)
        counted = self.requests - (answered_in_gap if self.worker_count > 1 else 0)
        samples = Sample.objects.filter(generation_items__run=run).count()
        per_item = GenerationItem.objects.filter(run=run).values_list("id", flat=True)
        from django.db.models import Count

        wrong = (
            GenerationItem.objects.filter(id__in=per_item).annotate(n=Count("samples")).exclude(n=1).count()
        )
        throughput = counted / active
        ideal = self.concurrency / (self.latency_ms / 1000.0)
        return {
            "requests": self.requests,
            "seconds": round(active, 3),
            "throughput_rps": round(throughput, 2),
            "ideal_rps": round(ideal, 2),
            "efficiency": round(throughput / ideal, 3),
            "requests_seen_by_server": len(bodies),
            "duplicate_requests_after_resume": duplicates,
            "samples": samples,
            "resent_in_flight": resent_in_flight,
            # with several workers the server cannot tell whose request it read in the gap
            "late_arrivals_from_killed_worker": late_from_killed_worker if self.worker_count == 1 else None,
            "items_without_exactly_one_sample": wrong,
            "worker_cpu_ms_per_request": round(1000 * cpu_seconds / max(1, len(bodies)), 2),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "server_answer_ms_median": round(1000 * answer_seconds[len(answer_seconds) // 2], 1)
            if answer_seconds
            else None,
            "run_status": run.status,
            "killed_after_done": len(done_before_kill),
            "workers": self.worker_count,
            "answered_in_gap_not_counted": answered_in_gap if self.worker_count > 1 else 0,
            "shards": run.shard_count,
            "cores": os.cpu_count(),
        }


def _send_share(endpoint, requests: list, start, reports) -> None:
    """A forked sender of `run_send_only`: waits for the start, sends its share with the production send path
    and reports (answers that came back usable, CPU seconds this process spent sending)."""
    import asyncio

    from generation.llm.client import complete_many

    gc.freeze()  # the inherited heap, as the run's own sender child does (generation.llm.client)
    answered: list[bool] = []
    start.wait()
    cpu = time.process_time()
    asyncio.run(complete_many(endpoint, requests, lambda request, result: answered.append(result.ok)))
    reports.put((sum(answered), time.process_time() - cpu))
