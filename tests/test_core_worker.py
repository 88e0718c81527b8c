"""A real Celery worker: the "no worker is running" banner, and work run by the worker process."""

from __future__ import annotations

import pytest
from django.urls import reverse

from synthstudio.models import WorkerHeartbeat

BANNER = "No worker is running"


@pytest.mark.worker
def test_it_hides_the_no_worker_banner_while_a_worker_is_alive(celery_worker_process, client, lead):
    client.force_login(lead)
    assert WorkerHeartbeat.objects.filter(hostname=celery_worker_process.hostname).exists()
    assert BANNER not in client.get(reverse("worker_status")).content.decode()

    celery_worker_process.stop()

    assert BANNER in client.get(reverse("worker_status")).content.decode()
