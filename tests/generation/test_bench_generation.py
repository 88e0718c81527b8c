"""bench_generation --send-only: the send path's ceiling on this machine, in a throwaway environment (its own
SQLite database, the test server in the benchmark's process, forked senders through the real openai client)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def test_send_only_sends_every_planned_request_once_across_the_sender_processes():
    out = StringIO()
    call_command(
        "bench_generation",
        "--send-only",
        "--requests",
        "60",
        "--concurrency",
        "8",
        "--latency-ms",
        "20",
        "--workers",
        "2",
        stdout=out,
    )
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["mode"] == "send-only"
    assert (result["answered_ok"], result["requests_seen_by_server"]) == (60, 60)
    assert result["senders"] == 2 and len(result["sender_cpu_ms_per_request"]) == 2
    assert all(cpu > 0 for cpu in result["sender_cpu_ms_per_request"])
    assert result["ideal_rps"] == 400.0  # 8 in flight, 20 ms each
    assert 0 < result["efficiency"] <= 1.0
    assert result["throughput_rps"] == pytest.approx(60 / result["seconds"], rel=0.01)
    assert result["cores"] >= 1 and result["cores_busy"] > 0


def test_workers_below_one_is_refused():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("bench_generation", "--send-only", "--workers", "0")
