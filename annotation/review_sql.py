"""The statements every answer in the review queue runs, written out as SQL (SQLite and PostgreSQL).

Why not the ORM here: an annotator's submit stores the answer, claims the next item and renders it — about fifteen
statements. Compiled by the ORM, each cost 0.2–1.1 ms of CPU on PostgreSQL while the database needed ~0.1 ms to
run it; on the 2-core machine that compile time was most of the server's work per answer (`bench_review`). The
rules stay in annotation/review.py; this module only says how to read and write the rows, and returns model
instances (synthstudio.fastsql) so the rest of the code does not know the difference.

Column values that are enum members are passed as parameters, never spliced into the SQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import IntegrityError, connection, transaction

from synthstudio import fastsql
from synthstudio.models import Codebook, HumanAnnotation, LLMAnnotation, Sample

from .final_labels import final_label_lock, human_label_rows
from .models import Assignment, AssignmentStatus, ReviewTask, TaskKind

TAKEN_BY_ANNOTATOR = (AssignmentStatus.ANSWERED.value, AssignmentStatus.SKIPPED.value, AssignmentStatus.RESERVED.value)
REOPENABLE = (AssignmentStatus.EXPIRED.value, AssignmentStatus.RELEASED.value)

_SQLITE_WRITERS = threading.RLock()


@contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction of the queue. SQLite has one writer at a time and its busy handler polls with growing
    sleeps, so under load a waiting thread can keep missing the lock past the busy timeout ("database is
    locked"). On SQLite the threads of one process therefore queue on a lock here first, and only one
    connection per process competes for the database's write lock. PostgreSQL locks rows: no queue."""
    if connection.vendor == "sqlite":
        with _SQLITE_WRITERS, transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


class ClaimLost(Exception):
    """Another annotator took the last slot (or this annotator raced themselves): try the next candidate."""


def _current_llm_id(sample_alias: str) -> str:
    # the ordering of LLMAnnotation.Meta (newest first), as sample.llm_annotations.filter(...).first() reads it
    return (
        "(SELECT l.id FROM synthstudio_llmannotation l"
        f" WHERE l.sample_id = {sample_alias}.id AND l.is_current AND l.valid"
        " ORDER BY l.created_at DESC, l.id DESC LIMIT 1)"
    )


_ITEM_SQL = (
    f"SELECT {fastsql.columns(Assignment, 'a')}, {fastsql.columns(ReviewTask, 't')}, {fastsql.columns(Sample, 's')},"
    f" {fastsql.columns(LLMAnnotation, 'l')}, {fastsql.columns(Codebook, 'c')}"
    " FROM annotation_assignment a"
    " JOIN annotation_reviewtask t ON t.id = a.task_id"
    " JOIN synthstudio_sample s ON s.id = t.sample_id"
    f" LEFT JOIN synthstudio_llmannotation l ON l.id = {_current_llm_id('s')}"
    " LEFT JOIN synthstudio_codebook c ON c.id ="
    " (SELECT cv.id FROM synthstudio_codebook cv WHERE cv.project_id = t.project_id ORDER BY cv.version DESC LIMIT 1)"
    " WHERE a.id = %s"
)


def item(
    *,
    assignment_id: int,
    annotator_id: int | None = None,
    project_id: int | None = None,
    progress: tuple[datetime, int] | None = None,
) -> Assignment | None:
    """The assignment with `task` and `task.sample` set, plus two annotations: `llm_suggestion` (the sample's
    current valid LLM annotation or None) and `current_codebook` (the project's newest codebook version or None).
    With annotator_id / project_id, another annotator's or another project's assignment is None. With
    `progress` = (since, cap), also `progress_counts` = progress_counts(...) of the assignment's annotator, read
    in the same round trip."""
    select, params = _ITEM_SQL, [assignment_id]
    if progress is not None:
        select = _ITEM_SQL.replace(" FROM annotation_assignment a", _progress_columns() + " FROM annotation_assignment a", 1)
        params = [*_progress_params(*progress), assignment_id]
    if annotator_id is not None:
        select += " AND a.annotator_id = %s"
        params.append(annotator_id)
    if project_id is not None:
        select += " AND t.project_id = %s"
        params.append(project_id)
    row = fastsql.fetchone(select, params)
    if row is None:
        return None
    assignment, task, sample, suggestion, codebook = fastsql.instances(
        row, Assignment, ReviewTask, Sample, LLMAnnotation, Codebook
    )
    task.sample = sample
    assignment.task = task
    assignment.llm_suggestion = suggestion
    assignment.current_codebook = codebook
    if progress is not None:
        assignment.progress_counts = tuple(int(value) for value in row[-3:])
    return assignment


@dataclass(frozen=True)
class Reservation:
    """What `reserve` did: the assignment the annotator works on now (a live one or a new claim), or none —
    with `retry` when a race was lost and another attempt may succeed."""

    assignment_id: int | None
    retry: bool = False


def reserve(*, project_id: int, annotator_id: int, gold: bool, now: datetime, expires_at: datetime) -> Reservation:
    """The annotator's newest live reservation in the project (undo brings one back); if there is none, claim
    the next task: the highest priority open task with a free slot that this annotator has not answered,
    skipped or reserved — for gold, the oldest open gold task they have not done — by taking a slot with a
    conditional UPDATE and reserving it (a new row, or their expired/released row for it reserved again: one row
    per task and annotator). On PostgreSQL this is one statement; elsewhere a short write transaction."""
    if connection.vendor == "postgresql":
        return _reserve_in_one_statement(project_id, annotator_id, gold, now, expires_at)
    live = _live_reservation_id(project_id, annotator_id, now)
    if live is not None:
        return Reservation(live)
    try:
        with write_transaction():
            found = _candidate(project_id, annotator_id, gold)
            if found is None:
                return Reservation(None)
            task_id, earlier = found
            return Reservation(
                claim_task(task_id=task_id, gold=gold, earlier=earlier, annotator_id=annotator_id,
                           project_id=project_id, now=now, expires_at=expires_at)
            )
    except (ClaimLost, IntegrityError):
        # IntegrityError: the same annotator claimed this task at the same moment in another tab
        return Reservation(None, retry=True)


def _live_reservation_id(project_id: int, annotator_id: int, now: datetime) -> int | None:
    row = fastsql.fetchone(
        f"SELECT a.id FROM annotation_assignment a WHERE {_LIVE} ORDER BY a.reserved_at DESC, a.id DESC LIMIT 1",
        [annotator_id, project_id, AssignmentStatus.RESERVED.value, fastsql.timestamp(now)],
    )
    return row[0] if row else None


_LIVE = "a.annotator_id = %s AND a.project_id = %s AND a.status = %s AND a.expires_at > %s"


def _not_taken_by_annotator(task: str = "t", annotator: str = "%s") -> str:
    # A count per candidate row rather than NOT EXISTS: PostgreSQL turns NOT EXISTS into an anti-join whose plan
    # depends on table statistics, and on a freshly routed queue (before autovacuum's ANALYZE) it scanned the
    # annotator's whole history once per candidate (27 ms for 500 candidates at 300 answers). A scalar subquery
    # stays a per-row probe of the unique (task, annotator) index whatever the statistics say.
    # Parameters: the annotator id when `annotator` is "%s", then the three taken statuses.
    return (
        f"(SELECT COUNT(*) FROM annotation_assignment x WHERE x.task_id = {task}.id AND x.annotator_id = {annotator}"
        " AND x.status IN (%s, %s, %s)) = 0"
    )


def _candidates(gold: bool, task: str = "t", annotator: str = "%s") -> tuple[str, str]:
    """(WHERE clause after `<task>.project_id = … AND <task>.is_open AND`, ORDER BY) of the tasks an annotator
    may claim. Parameters: the gold kind, then those of _not_taken_by_annotator."""
    taken = _not_taken_by_annotator(task, annotator)
    if gold:
        return f"{task}.kind = %s AND {taken}", f"{task}.id"
    # the predicate of the partial index review_task_claimable, so the scan follows it in serving order
    return (
        f"{task}.kind <> %s AND {task}.claimed_count < {task}.required_answers AND {taken}",
        f"{task}.priority DESC, {task}.id",
    )


def _candidate(project_id: int, annotator_id: int, gold: bool) -> tuple[int, bool] | None:
    """(task id, whether the annotator has an earlier expired/released row for it) of the task to claim."""
    where, order = _candidates(gold)
    row = fastsql.fetchone(
        "SELECT t.id, EXISTS (SELECT 1 FROM annotation_assignment e WHERE e.task_id = t.id AND e.annotator_id = %s)"
        f" FROM annotation_reviewtask t WHERE t.project_id = %s AND t.is_open AND {where} ORDER BY {order} LIMIT 1",
        [annotator_id, project_id, TaskKind.GOLD.value, annotator_id, *TAKEN_BY_ANNOTATOR],
    )
    return (row[0], bool(row[1])) if row else None


def _reserve_in_one_statement(
    project_id: int, annotator_id: int, gold: bool, now: datetime, expires_at: datetime
) -> Reservation:
    """PostgreSQL: live reservation, candidate (locked, skipping rows others are claiming this instant), slot and
    reservation in one round trip. The slot UPDATE re-checks the free slot on the locked row; ON CONFLICT
    reserves the annotator's expired/released row again."""
    where, order = _candidates(gold)
    slot_condition = "" if gold else " AND t.claimed_count < t.required_answers"
    columns = "task_id, project_id, annotator_id, status, reserved_at, expires_at, answered_at, answer_id, skip_reason, submission_id"
    live_id, picked_id, slot_id, taken_id = fastsql.fetchone(
        f"WITH live AS (SELECT a.id FROM annotation_assignment a WHERE {_LIVE}"
        " ORDER BY a.reserved_at DESC, a.id DESC LIMIT 1),"
        " picked AS (SELECT t.id FROM annotation_reviewtask t WHERE NOT EXISTS (SELECT 1 FROM live)"
        f" AND t.project_id = %s AND t.is_open AND {where} ORDER BY {order} LIMIT 1 FOR UPDATE OF t SKIP LOCKED),"
        " slot AS (UPDATE annotation_reviewtask t SET claimed_count = t.claimed_count + 1 FROM picked"
        f" WHERE t.id = picked.id AND t.is_open{slot_condition} RETURNING t.id),"
        f" taken AS (INSERT INTO annotation_assignment ({columns})"
        " SELECT slot.id, %s, %s, %s, %s, %s, NULL, NULL, '', '' FROM slot"
        " ON CONFLICT (task_id, annotator_id) DO UPDATE SET status = EXCLUDED.status,"
        " reserved_at = EXCLUDED.reserved_at, expires_at = EXCLUDED.expires_at, submission_id = ''"
        " WHERE annotation_assignment.status IN (%s, %s) RETURNING id)"
        " SELECT (SELECT id FROM live), (SELECT id FROM picked), (SELECT id FROM slot), (SELECT id FROM taken)",
        [
            annotator_id, project_id, AssignmentStatus.RESERVED.value, fastsql.timestamp(now),
            project_id, TaskKind.GOLD.value, annotator_id, *TAKEN_BY_ANNOTATOR,
            project_id, annotator_id, AssignmentStatus.RESERVED.value, fastsql.timestamp(now),
            fastsql.timestamp(expires_at),
            *REOPENABLE,
        ],
    )
    if live_id is not None:
        return Reservation(live_id)
    if taken_id is not None:
        return Reservation(taken_id)
    if slot_id is not None:
        # the annotator's own row for the task was reserved/answered meanwhile (another tab): give the slot back
        slot_give_back(task_id=slot_id)
    return Reservation(None, retry=picked_id is not None)


def claim_task(
    *, task_id: int, gold: bool, earlier: bool, annotator_id: int, project_id: int, now: datetime, expires_at: datetime
) -> int:
    """Take one slot of the task for the annotator and return the assignment id. Call inside a transaction;
    raises ClaimLost (or IntegrityError, which ends the transaction). `earlier`: the annotator has a row for
    the task already (expired or released before), which is then reserved again: one row per pair."""
    if not slot_take(task_id=task_id, gold=gold):
        raise ClaimLost
    if earlier:
        reopened = fastsql.fetchone(
            "UPDATE annotation_assignment SET status = %s, reserved_at = %s, expires_at = %s, submission_id = ''"
            " WHERE task_id = %s AND annotator_id = %s AND status IN (%s, %s) RETURNING id",
            [AssignmentStatus.RESERVED.value, fastsql.timestamp(now), fastsql.timestamp(expires_at), task_id,
             annotator_id, *REOPENABLE],
        )
        if reopened is None:
            raise ClaimLost
        return reopened[0]
    # no savepoint: a unique-constraint clash ends this attempt's transaction and the caller retries
    assignment = Assignment(
        task_id=task_id, project_id=project_id, annotator_id=annotator_id, reserved_at=now, expires_at=expires_at
    )
    return fastsql.insert(assignment).pk


def slot_take(*, task_id: int, gold: bool) -> bool:
    """Take one slot of the task: a conditional UPDATE, so a full task is never over-claimed. Gold tasks have no
    overlap limit (every annotator answers each gold item once)."""
    sql = "UPDATE annotation_reviewtask SET claimed_count = claimed_count + 1 WHERE id = %s AND is_open"
    if not gold:
        sql += " AND claimed_count < required_answers"
    return fastsql.execute(sql, [task_id]) == 1


def slot_give_back(*, task_id: int) -> None:
    fastsql.execute("UPDATE annotation_reviewtask SET claimed_count = claimed_count - 1 WHERE id = %s", [task_id])


@dataclass(frozen=True)
class AnswerWrite:
    """What `answer_write` stored: the reservation time as stored (in fastsql.timestamp's form) and the sample's
    earlier labelled human annotations as (source, label, annotator_id, id), newest first."""

    reserved_at: object
    earlier_human_rows: list[tuple]


def answer_write(*, answer: HumanAnnotation, assignment_id: int, task_id: int, now: datetime, submission_id: str) -> AnswerWrite | None:
    """Inside a transaction: insert the answer (sets answer.pk), mark the reservation answered with it — only if
    it is still a live reservation; None otherwise (answered already, skipped, expired, released), and the caller
    rolls back — and count it on the task (a regular task closes with its required answers; gold checks stay
    open). Also reads the sample's earlier human labels for the final label. One statement on PostgreSQL."""
    record = (
        "UPDATE annotation_assignment SET status = %s, answered_at = %s, answer_id = {answer_id}, submission_id = %s"
        " WHERE id = %s AND status = %s RETURNING reserved_at"
    )
    record_params = [AssignmentStatus.ANSWERED.value, fastsql.timestamp(now), submission_id, assignment_id,
                     AssignmentStatus.RESERVED.value]
    count = (
        "UPDATE annotation_reviewtask SET answers_count = answers_count + 1,"
        " is_open = CASE WHEN kind <> %s AND answers_count + 1 >= required_answers THEN %s ELSE is_open END"
        " WHERE id = %s{only_if_recorded}"
    )
    count_params = [TaskKind.GOLD.value, False, task_id]
    insert_sql, insert_params = fastsql.insert_statement(answer)
    if connection.vendor == "postgresql":
        # lock first: the statement below then starts after a concurrent answer to this item has committed
        final_label_lock(sample_id=answer.sample_id)
        # the earlier rows as JSON text: the statement's snapshot does not contain the answer it inserts
        earlier_json = (
            "(SELECT json_agg(json_build_array(h.source, h.label, h.annotator_id, h.id)"
            " ORDER BY h.created_at DESC, h.id DESC)::text FROM synthstudio_humanannotation h"
            " WHERE h.sample_id = %s AND h.label <> '')"
        )
        row = fastsql.fetchone(
            f"WITH answer AS ({insert_sql} RETURNING id),"
            f" recorded AS ({record.format(answer_id='(SELECT id FROM answer)')}),"
            f" counted AS ({count.format(only_if_recorded=' AND EXISTS (SELECT 1 FROM recorded)')} RETURNING id)"
            f" SELECT (SELECT id FROM answer), (SELECT reserved_at FROM recorded), {earlier_json}",
            [*insert_params, *record_params, *count_params, answer.sample_id],
        )
        answer.pk, reserved_at, earlier_rows = row
        answer._state.adding, answer._state.db = False, connection.alias
        if reserved_at is None:
            return None
        return AnswerWrite(reserved_at, [tuple(item) for item in json.loads(earlier_rows or "[]")])
    fastsql.insert(answer)
    recorded = fastsql.fetchone(record.format(answer_id="%s"), [*record_params[:2], answer.pk, *record_params[2:]])
    if recorded is None:
        return None
    fastsql.execute(count.format(only_if_recorded=""), count_params)
    earlier_rows = [row for row in human_label_rows(answer.sample_id) if row[3] != answer.pk]
    return AnswerWrite(recorded[0], earlier_rows)


@cache
def _progress_columns() -> str:
    """The progress of the annotator and project of the row aliased `a` (a.annotator_id, a.project_id): answers,
    answers since a moment, and the regular items they could still claim (counted up to a cap). Each column
    starts with a comma. Parameters: those of _progress_params."""
    return (
        ", (SELECT COUNT(*) FROM annotation_assignment d WHERE d.annotator_id = a.annotator_id"
        " AND d.project_id = a.project_id AND d.status = %s)"
        ", (SELECT COUNT(*) FROM annotation_assignment d WHERE d.annotator_id = a.annotator_id"
        " AND d.project_id = a.project_id AND d.status = %s AND d.answered_at >= %s)"
        ", (SELECT COUNT(*) FROM (SELECT 1 FROM annotation_reviewtask r WHERE r.project_id = a.project_id AND r.is_open"
        f" AND {_candidates(gold=False, task='r', annotator='a.annotator_id')[0]} LIMIT %s) q)"
    )


def _progress_params(since: datetime, cap: int) -> list:
    answered = AssignmentStatus.ANSWERED.value
    return [answered, answered, fastsql.timestamp(since), TaskKind.GOLD.value, *TAKEN_BY_ANNOTATOR, cap]


def progress_counts(*, project_id: int, annotator_id: int, since: datetime, cap: int) -> tuple[int, int, int]:
    """(answers in the project, answers since `since`, regular items the annotator could still claim counted up
    to `cap`) of one annotator, in one round trip; `item(progress=...)` reads the same beside an item."""
    row = fastsql.fetchone(
        f"SELECT 0{_progress_columns()} FROM (SELECT %s AS annotator_id, %s AS project_id) a",
        [*_progress_params(since, cap), annotator_id, project_id],
    )
    return int(row[1]), int(row[2]), int(row[3])


def answered_total(*, project_id: int, annotator_id: int) -> int:
    row = fastsql.fetchone(
        "SELECT COUNT(*) FROM annotation_assignment a WHERE a.annotator_id = %s AND a.project_id = %s AND a.status = %s",
        [annotator_id, project_id, AssignmentStatus.ANSWERED.value],
    )
    return int(row[0])
