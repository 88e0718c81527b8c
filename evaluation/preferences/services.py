"""Pairwise-preference workflows: importing judged pairs, the leaderboards and rater agreement they give, and
the one-pair-at-a-time review (who judges what, which side shows first, recording a choice).

The ratings maths (Elo, Bradley-Terry, agreement) lives in evaluation.dashboards.metrics; LLM-as-judge runs
are in evaluation.preferences.judges, pairs made from generation runs in evaluation.preferences.pairs.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q

from evaluation.dashboards import metrics
from evaluation.models import (
    JudgeRun,
    PairChoice,
    PairwiseItem,
    PairwiseJudgment,
    PairwiseRater,
    RaterKind,
)
from evaluation.preferences.files import PairRecord
from synthstudio.models import Project

BOOTSTRAP_ROUNDS = 200
CHOICE_SCORE = {PairChoice.A: 1.0, PairChoice.B: 0.0, PairChoice.TIE: 0.5}


def pairwise_import(*, project: Project, records: list[PairRecord], batch: str) -> dict:
    """Store pairs and their judgments; annotators named in the file become pseudo-raters (no login)."""
    with transaction.atomic():
        raters = {r.name: r for r in PairwiseRater.objects.filter(project=project)}
        for name in sorted({name for record in records for name, _ in record.judgments} - set(raters)):
            raters[name] = PairwiseRater.objects.create(project=project, name=name, kind=RaterKind.IMPORTED)
        items = PairwiseItem.objects.bulk_create(
            PairwiseItem(project=project, prompt=r.prompt, response_a=r.response_a, response_b=r.response_b,
                         source_a=r.source_a, source_b=r.source_b, external_id=r.external_id, batch=batch)
            for r in records
        )  # fmt: skip
        judgments = [
            PairwiseJudgment(item=item, rater=raters[name], choice=choice, a_shown_first=True)
            for item, record in zip(items, records, strict=True)
            for name, choice in record.judgments
        ]
        PairwiseJudgment.objects.bulk_create(judgments, batch_size=1000)
    return {
        "pairs": len(items),
        "judgments": len(judgments),
        "raters": len({n for r in records for n, _ in r.judgments}),
    }


def pairwise_matches(judgments: Iterable[tuple[str, str, str]]) -> list[metrics.Match]:
    return [(a, b, CHOICE_SCORE[choice]) for a, b, choice in judgments]


def pairwise_summary(*, project: Project) -> dict:
    """Leaderboards (Elo and Bradley-Terry with bootstrap intervals) from human and imported judgments, and
    the agreement of those raters."""
    rows = list(
        PairwiseJudgment.objects.filter(item__project=project)
        .exclude(rater__kind=RaterKind.LLM)
        .order_by("id")
        .values_list("item_id", "rater_id", "rater__name", "choice", "item__source_a", "item__source_b")
    )
    if not rows:
        return {"judgments": 0}
    matches = pairwise_matches((a, b, choice) for _i, _r, _n, choice, a, b in rows)
    elo = metrics.elo_leaderboard(matches, rounds=BOOTSTRAP_ROUNDS)
    bt = {row.player: row for row in metrics.bradley_terry_leaderboard(matches, rounds=BOOTSTRAP_ROUNDS)}
    units: dict[int, dict[int, str]] = defaultdict(dict)
    names = {}
    for item_id, rater_id, rater_name, choice, *_ in rows:
        units[item_id][rater_id] = choice
        names[rater_id] = rater_name
    wins = Counter()
    for a, b, score in matches:
        wins[a] += score
        wins[b] += 1 - score
    leaderboard = [
        {"player": r.player, "games": r.games, "win_rate": wins[r.player] / r.games,
         "elo": r.rating, "elo_low": r.low, "elo_high": r.high, "elo_in_order": r.in_order,
         "bt": bt[r.player].rating, "bt_low": bt[r.player].low, "bt_high": bt[r.player].high}
        for r in elo
    ]  # fmt: skip
    return {
        "judgments": len(rows),
        "items": len(units),
        "ties": sum(1 for row in rows if row[3] == PairChoice.TIE),
        "leaderboard": leaderboard,
        "agreement": metrics.rater_agreement(units, names),
        "bootstrap_rounds": BOOTSTRAP_ROUNDS,
    }


def pairwise_rater_for(*, project: Project, user: AbstractBaseUser) -> PairwiseRater:
    rater, _ = PairwiseRater.objects.get_or_create(
        project=project, name=f"user:{user.get_username()}", defaults={"kind": RaterKind.HUMAN, "user": user}
    )
    return rater


def a_shown_first_for(*, item_id: int, user_id: int) -> bool:
    """Each annotator sees a stable, pseudo-random side for each pair (half the pairs swapped)."""
    return hashlib.sha256(f"{item_id}:{user_id}".encode()).digest()[0] % 2 == 0


def pairwise_next_for(*, project: Project, user: AbstractBaseUser) -> PairwiseItem | None:
    rater = pairwise_rater_for(project=project, user=user)
    return PairwiseItem.objects.filter(project=project).exclude(judgments__rater=rater).order_by("id").first()


def pairwise_pending_count(*, project: Project, user: AbstractBaseUser) -> int:
    """How many pairs the user has not judged yet (one query; no rater row is made for it)."""
    return PairwiseItem.objects.filter(project=project).exclude(judgments__rater__user=user).count()


def pairwise_judge(*, item: PairwiseItem, user: AbstractBaseUser, shown: str) -> PairwiseJudgment:
    """Record a choice made on the review page. `shown` is what the annotator picked by position: "first",
    "second" or "tie"; it is stored as a choice between the item's A and B, with the position."""
    a_first = a_shown_first_for(item_id=item.id, user_id=user.pk)
    if shown == "tie":
        choice = PairChoice.TIE
    elif shown == "first":
        choice = PairChoice.A if a_first else PairChoice.B
    elif shown == "second":
        choice = PairChoice.B if a_first else PairChoice.A
    else:
        raise ValueError(f"unknown choice {shown!r}")
    rater = pairwise_rater_for(project=item.project, user=user)
    judgment, _ = PairwiseJudgment.objects.update_or_create(
        item=item, rater=rater, a_shown_first=a_first, defaults={"choice": choice}
    )
    return judgment


def judge_runs_for(*, project: Project) -> list[JudgeRun]:
    return list(JudgeRun.objects.filter(project=project).order_by("-created_at")[:20])


def pairwise_counts(*, project: Project) -> dict:
    return PairwiseItem.objects.filter(project=project).aggregate(
        items=Count("id", distinct=True),
        judged=Count("judgments", filter=~Q(judgments__rater__kind=RaterKind.LLM)),
    )
