"""Time limits of every Celery task, by kind of work, in one place.

Plain Python with no Django import: settings.py reads LONGEST_HARD_LIMIT for the Redis visibility timeout.

The soft limit raises SoftTimeLimitExceeded inside the task: `synthstudio.jobs.run_job` turns it into a failed
job saying it took longer than the limit. The hard limit, a margin later, kills the process (a task stuck in C
code never sees the soft limit); the stall detector then finds the job. Limits are enforced by the prefork pool
(the default and what `start` runs); the solo pool the integration tests use does not enforce them.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE = 60
HOUR = 60 * MINUTE
# Time for the soft-limit handler to write the failed job before the process is killed.
HARD_LIMIT_MARGIN = 2 * MINUTE


@dataclass(frozen=True)
class TaskLimits:
    soft: int  # seconds

    @property
    def hard(self) -> int:
        return self.soft + HARD_LIMIT_MARGIN

    def options(self) -> dict[str, int]:
        """Keyword arguments for @shared_task."""
        return {"soft_time_limit": self.soft, "time_limit": self.hard}


# Short: a recomputation that reads what is stored.
METRICS = TaskLimits(soft=10 * MINUTE)
ROUTING = TaskLimits(soft=10 * MINUTE)
EXPORT = TaskLimits(soft=20 * MINUTE)  # one file of one snapshot; a re-download reuses it
# Medium: every sample embedded or copied once (embeddings are cached).
SIGNALS = TaskLimits(soft=1 * HOUR)
SNAPSHOT = TaskLimits(soft=1 * HOUR)
REFINEMENT = TaskLimits(soft=1 * HOUR)
BENCHMARK = TaskLimits(soft=1 * HOUR)
LABELSTUDIO_IMPORT = TaskLimits(soft=1 * HOUR)
# Long: files up to IMPORT_MAX_MB, or one LLM call per item.
IMPORT = TaskLimits(soft=2 * HOUR)
LABELLING = TaskLimits(soft=6 * HOUR)
JUDGE = TaskLimits(soft=6 * HOUR)
GENERATION = TaskLimits(soft=12 * HOUR)

ALL = (METRICS, ROUTING, EXPORT, SIGNALS, SNAPSHOT, REFINEMENT, BENCHMARK, LABELSTUDIO_IMPORT, IMPORT, LABELLING,
       JUDGE, GENERATION)  # fmt: skip
LONGEST_HARD_LIMIT = max(limits.hard for limits in ALL)


def duration_text(seconds: float) -> str:
    """'2 hours', '20 minutes', '3 seconds': how a limit reads in a job's error."""
    seconds = int(round(seconds))
    for unit, size in (("hour", HOUR), ("minute", MINUTE)):
        if seconds >= size and (seconds % size == 0 or unit == "minute"):
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
