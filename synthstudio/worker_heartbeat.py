"""Each Celery worker writes a WorkerHeartbeat row every WORKER_HEARTBEAT_SECONDS from a daemon thread, so
pages can tell "queued" from "queued with nobody to run it" on any broker (the filesystem broker has no
remote-control channel for `inspect ping`). The same thread looks for jobs whose worker died
(synthstudio.jobs.recover_stalled_jobs), so stalled jobs are requeued or failed with no beat server."""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _hostname(sender) -> str:
    return getattr(sender, "hostname", None) or f"{socket.gethostname()}:{os.getpid()}"


def _beat(hostname: str, interval: float) -> None:
    from django.db import close_old_connections
    from django.utils import timezone

    from synthstudio.jobs import recover_stalled_jobs_if_due
    from synthstudio.models import WorkerHeartbeat

    while not _stop.is_set():
        try:
            close_old_connections()
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname, defaults={"pid": os.getpid(), "last_seen": timezone.now()}
            )
        except Exception:  # a database hiccup must not kill the worker; the next beat retries
            pass
        try:
            recover_stalled_jobs_if_due()
        except Exception:  # nor a failed look for stalled jobs
            logger.exception("Looking for stalled jobs failed")
        _stop.wait(interval)


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs) -> None:
    from django.conf import settings

    _stop.clear()
    thread = threading.Thread(
        target=_beat,
        args=(_hostname(sender), settings.WORKER_HEARTBEAT_SECONDS),
        daemon=True,
        name="heartbeat",
    )
    thread.start()


@worker_shutdown.connect
def stop_heartbeat(sender=None, **kwargs) -> None:
    _stop.set()
    try:
        from synthstudio.models import WorkerHeartbeat

        WorkerHeartbeat.objects.filter(hostname=_hostname(sender)).delete()
    except Exception:
        pass
