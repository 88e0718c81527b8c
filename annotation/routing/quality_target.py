"""The quality-target routing mode (PAC labelling; ALGORITHMS.md §8): route a random calibration sample, then
exactly the items above the threshold the human answers certify, then write the label certificate.

The lead sets a target error ε and confidence 1 − α on the routing policy; the policy then routes in phases,
one step each time `routing_route_next_batch` runs (the lead's "route now", or the worker once every routed
item is answered):

1. calibration: `calibration_size` draws with replacement from the certify core's probabilities q (a mix of
   uniform and proportional to the uncertainty u = 1 − the LLM's probability of its own label); each distinct
   drawn item becomes an audit ReviewTask with π = 1 − (1 − q)^draws. With `certify_score = learned` the
   design bench_certify's learned method measures (certify's module docstring) runs instead: first a fit
   sample of `calibration_size` distinct items (certify.draw_fit_sample: without replacement, FIT_UNIFORM_SHARE
   uniform, the rest ∝ the label-free router.prior_error_score², so it lands mostly on items humans label
   anyway) is routed; the learned router is fitted on the answers so far and its predicted error p is u. Only
   the items with the lowest p whose summed p stays ≤ KEEP_MARGIN · ε · N may keep their LLM label
   (certify.keepable_items, with the ε of that moment); the rest go to humans with the threshold batch. The
   `calibration_size` draws then come from the keepable items only, q ∝ LEARNED_UNIFORM_SHARE uniform +
   √p (LEARNED_POWER). The score never sees the labels the bound uses (cross-fitting), and the region is
   fixed before the draws, so the guarantee holds whatever the prediction's quality.
2. threshold: once every calibration item has its answers, loss = "the final (human) label differs from the
   LLM's"; `certify_threshold` finds the largest λ whose (1 − α) upper bound of the kept labels' error is ≤ ε,
   and every item with u ≥ λ that no human has labelled is routed at once (π = 1). A quality target is not
   capped by the routing budget: the number of items humans must label is what the guarantee costs.
3. certificate: once those are answered, a LabelCertificate (annotation.routing.certificates says what it says)
   with the IPW estimate of the final labels' error and its interval, the measured reviewer agreement and the
   digest of the labels it speaks for. A later change of labels or samples makes it stale; the next routing
   step then re-certifies from the same calibration sample (routing whatever the new labels need).

Everything the bound needs is kept in `RoutingPolicy.quality_state` (JSON): the frozen scores, q, the draws
with multiplicity, the items already labelled by humans when the sample was drawn, and the batches routed.
Changing the calibration size or the score starts a new calibration; changing ε or 1 − α re-certifies.

Items that a human labels anyway (already human-verified, without a valid LLM label, or waiting in the queue
when the sample is drawn) get q = 0 and are never kept; samples added after the calibration are routed to
humans (they were not in the population the sample was drawn from). Samples deleted after it count as wrong
where they were drawn, and ε is scaled to the smaller project, so the guarantee still holds for what remains.
"""

from __future__ import annotations

import copy
import math
import secrets
from dataclasses import dataclass

import numpy as np
from django.db.models import Max

from annotation.models import (
    Assignment,
    AssignmentStatus,
    CertifyScore,
    LabelCertificate,
    ReviewTask,
    RoutingPolicy,
    RoutingStrategy,
    TaskKind,
)
from annotation.review import stats as review_stats
from annotation.routing import certify
from annotation.routing.certificates import (
    certificate_as_dict,
    certificate_is_stale,
    certificate_latest,
    final_labels_digest,
)
from annotation.routing.services import RoutingPreviewRow, router_signals
from annotation.routing.signals import ProjectLabels, project_labels
from synthstudio.models import HumanAnnotation, HumanSource, Project

STATE_VERSION = 1
UNIFORM_SHARE = 0.5  # LLM score: share of the calibration draws spread evenly, the rest ∝ u
# learned score: bench_certify's learned method (its defaults --fit-uniform-share, --keep-margin,
# --uniform-share, --power); its fit sample has calibration_size items, as many as the calibration draws
FIT_UNIFORM_SHARE = 0.2  # uniform part of the fit sample, the rest ∝ prior² (certify.draw_fit_sample)
KEEP_MARGIN = 3.0  # certify.keepable_items: summed predicted error of the keepable items ≤ margin · ε · N
LEARNED_UNIFORM_SHARE = 0.3  # share of the calibration draws spread evenly over the keepable items
LEARNED_POWER = 0.5  # the rest ∝ (predicted error)**power: √p minimises the IPW variance
TIE_BREAK = 1e-6  # random tie-breaks, so a threshold can split a block of equal confidences
BOUND = "auto"  # betting (valid for any number of draws) below certify.CLT_MIN_DRAWS draws, CLT from there

PHASE_FIT = "fit"
PHASE_CALIBRATION = "calibration"
PHASE_THRESHOLD = "threshold"
PHASE_CERTIFIED = "certified"


@dataclass(frozen=True)
class _Pick:
    index: int  # row in the ProjectLabels
    priority: float
    reason: str
    inclusion_probability: float
    is_audit: bool


@dataclass
class _Step:
    """What the next routing step does: route `picks` (kind ROUTED), then store `state`; `certify` asks for a
    certificate to be written (nothing left to route or wait for); `waiting` says why nothing happens."""

    state: dict
    picks: list[_Pick]
    data: ProjectLabels
    certify: dict | None = None
    waiting: str = ""


@dataclass(frozen=True)
class QualityTargetProgress:
    """Where a quality-target policy stands, for the routing page."""

    phase: str  # "" before the first step
    fit_drawn: int
    fit_answered: int
    calibration_drawn: int  # distinct items
    calibration_answered: int
    draws: int  # calibration draws with multiplicity
    projected_human_share: float | None  # after calibration: the share of items humans must label
    threshold: float | None
    keeps_all: (
        bool  # the threshold is above every score: every LLM label is kept (bar the calibration sample)
    )
    threshold_routed: int
    threshold_answered: int
    certificate: dict | None  # certificate_as_dict of the latest certificate
    certificate_object: LabelCertificate | None
    waiting: str
    outside_keepable: int = 0  # learned score: items whose predicted error rules out keeping their LLM label

    @property
    def calibration_done(self) -> bool:
        return self.projected_human_share is not None

    @property
    def projected_human_percent(self) -> str:
        return "" if self.projected_human_share is None else f"{self.projected_human_share:.1%}"

    @property
    def threshold_text(self) -> str:
        if self.threshold is None:
            return "none: humans label every item"
        if self.keeps_all and self.outside_keepable:
            return (
                "above every score: the LLM's labels are kept where the predicted error allows, "
                "outside the calibration sample"
            )
        if self.keeps_all:
            return "above every score: the LLM's labels are kept outside the calibration sample"
        return f"u ≥ {self.threshold:.3f}"

    @property
    def certificate_stale(self) -> bool:
        return bool(self.certificate and self.certificate["stale"])

    @property
    def reviewer_agreement_text(self) -> str:
        """The measured side of "reviewers are right", in words."""
        if not self.certificate:
            return ""
        agreement = self.certificate.get("reviewer_agreement") or {}
        parts = []
        if agreement.get("pairs"):
            parts.append(
                f"reviewers agreed on {agreement['agreement']:.0%} of {agreement['pairs']} answer pairs "
                f"({agreement['overlap_items']} items answered by two or more)"
            )
        else:
            parts.append("reviewer agreement not measured (no item had two annotators)")
        if agreement.get("gold_total"):
            parts.append(
                f"gold accuracy {agreement['gold_accuracy']:.0%} on {agreement['gold_total']} checks"
            )
        else:
            parts.append("no gold checks answered")
        return "; ".join(parts) + "."


# ------------------------------------------------------------------------------------------------- public


def quality_target_preview(*, project: Project, policy: RoutingPolicy) -> list[RoutingPreviewRow]:
    """What the next step would route (nothing is written; a calibration sample is random, the preview shows
    one such draw)."""
    step = _next_step(project=project, policy=policy, seed=project.pk)
    return _rows(step)


def quality_target_route(*, project: Project, policy: RoutingPolicy) -> list[ReviewTask]:
    """Take the next step: route its items (one batch) and store the state; write the certificate when the
    step is done. Called by routing_route_next_batch with the policy row locked."""
    step = _next_step(project=project, policy=policy, seed=_fresh_seed())
    tasks: list[ReviewTask] = []
    if step.picks:
        batch = (ReviewTask.objects.filter(project=project).aggregate(b=Max("batch"))["b"] or 0) + 1
        tasks = ReviewTask.objects.bulk_create(
            [
                ReviewTask(
                    project=project,
                    sample=step.data.samples[pick.index],
                    kind=TaskKind.ROUTED,
                    priority=pick.priority,
                    reason=pick.reason[:300],
                    strategy=RoutingStrategy.QUALITY_TARGET,
                    batch=batch,
                    required_answers=policy.annotators_per_item,
                    inclusion_probability=pick.inclusion_probability,
                    is_audit=pick.is_audit,
                )
                for pick in step.picks
            ]
        )
        step.state.setdefault("batches", {}).setdefault(step.state["phase"], []).append(batch)
    if step.certify is not None:
        certificate = _certificate_write(project=project, policy=policy, outcome=step.certify, data=step.data)
        step.state["certificate_id"] = certificate.pk
    if step.state != policy.quality_state:
        RoutingPolicy.objects.filter(pk=policy.pk).update(quality_state=step.state)
        policy.quality_state = step.state
    return tasks


def quality_target_progress(*, project: Project, policy: RoutingPolicy) -> QualityTargetProgress:
    state = _state_for(policy)
    phase = state.get("phase", "")
    batches = state.get("batches", {})
    fit_drawn, fit_answered = _answered(project, batches.get(PHASE_FIT, []))
    calibration_drawn, calibration_answered = _answered(project, batches.get(PHASE_CALIBRATION, []))
    routed, answered = _answered(project, batches.get(PHASE_THRESHOLD, []))
    projection = state.get("projection") or {}
    waiting = ""
    if phase == PHASE_FIT and fit_answered < fit_drawn:
        waiting = f"{fit_drawn - fit_answered} of the learned score's fit sample await answers"
    elif phase == PHASE_CALIBRATION:
        # once the sample is answered the projection is cheap: show it before the worker has routed
        step = _next_step(project=project, policy=policy, seed=project.pk)
        waiting = step.waiting
        projection = step.state.get("projection") or projection
    certificate = certificate_latest(project=project)
    return QualityTargetProgress(
        phase=phase,
        fit_drawn=fit_drawn,
        fit_answered=fit_answered,
        calibration_drawn=calibration_drawn,
        calibration_answered=calibration_answered,
        draws=len(state.get("draws", [])),
        projected_human_share=projection.get("human_share"),
        threshold=projection.get("threshold"),
        keeps_all=bool(projection.get("keeps_all")),
        threshold_routed=routed,
        threshold_answered=answered,
        certificate=certificate_as_dict(certificate, stale=certificate_is_stale(certificate))
        if certificate
        else None,
        certificate_object=certificate,
        waiting=waiting,
        outside_keepable=len(state.get("outside", [])),
    )


# ------------------------------------------------------------------------------------------------ the steps


def _state_for(policy: RoutingPolicy) -> dict:
    """The stored state when it belongs to the policy's current calibration settings, else {} (start anew)."""
    state = policy.quality_state or {}
    key = {"score": policy.certify_score, "calibration_size": policy.calibration_size}
    if state.get("version") != STATE_VERSION or state.get("key") != key:
        return {"version": STATE_VERSION, "key": key}
    return copy.deepcopy(state)


def _next_step(*, project: Project, policy: RoutingPolicy, seed: int) -> _Step:
    state = _state_for(policy)
    learned = policy.certify_score == CertifyScore.LEARNED
    data = project_labels(project=project, with_embeddings=learned and state.get("phase") == PHASE_FIT)
    tasks = _task_index(project)
    phase = state.get("phase")
    if phase is None:
        return _start(state, data, tasks, policy=policy, project=project, seed=seed, learned=learned)
    open_batches = [
        b for name in (PHASE_FIT, PHASE_CALIBRATION) for b in state.get("batches", {}).get(name, [])
    ]
    waiting = _open_count(project, open_batches)
    if phase in (PHASE_FIT, PHASE_CALIBRATION) and waiting:
        return _Step(
            state, [], data, waiting=f"{waiting} {phase} item{'s' if waiting != 1 else ''} await answers"
        )
    if phase == PHASE_FIT:
        return _calibration_draw(state, data, tasks, policy=policy, project=project)
    return _threshold(state, data, tasks, policy=policy, project=project)


def _start(
    state: dict, data: ProjectLabels, tasks: dict, *, policy, project, seed: int, learned: bool
) -> _Step:
    n = len(data.samples)
    state.update(seed=int(seed), items=[s.pk for s in data.samples])
    if n == 0:
        return _Step(state, [], data, waiting="the project has no samples")
    fixed = _labelled_by_humans(data, tasks)
    state["fixed"] = np.flatnonzero(fixed).tolist()
    open_rows = np.flatnonzero(~fixed)
    if open_rows.size == 0:
        return _Step(state, [], data, waiting="humans label every item already: nothing to certify")
    if not learned:
        uncertainty = _llm_uncertainty(data) + np.random.default_rng(seed).uniform(0, TIE_BREAK, n)
        return _draw(state, data, uncertainty, fixed, policy=policy, seed=seed)
    # the fit sample: certify.draw_fit_sample over the open items, mostly where the label-free prior says the
    # LLM is probably wrong (those go to humans anyway), FIT_UNIFORM_SHARE uniform
    prior_all = _prior_error(data, router_signals(project=project))
    prior = prior_all[open_rows]
    size = max(1, min(open_rows.size - 1, policy.calibration_size))
    if open_rows.size > 1:
        chosen = certify.draw_fit_sample(
            prior, size=size, rng=np.random.default_rng(seed), uniform_share=FIT_UNIFORM_SHARE
        )
        fit_q = certify.calibration_probabilities(prior, uniform_share=FIT_UNIFORM_SHARE, power=2.0)
        pi = _successive_inclusion(fit_q, len(chosen))[chosen]
        order = np.argsort(open_rows[chosen])
        first, pi = open_rows[chosen][order], pi[order]
    else:
        first, pi = open_rows, np.ones(1)
    state["phase"] = PHASE_FIT
    state["fit"] = [data.samples[i].pk for i in first]  # sample ids: the samples may change before the draw
    picks = [
        _Pick(
            int(i),
            float(prior_i),
            "quality target: fit sample of the learned score (drawn mostly where the LLM is probably wrong)",
            float(p),
            True,
        )
        for i, prior_i, p in zip(first, prior_all[first], pi, strict=True)
    ]
    return _Step(state, picks, data)


def _calibration_draw(state: dict, data: ProjectLabels, tasks: dict, *, policy, project) -> _Step:
    """Learned score: fit the learned router on every human answer so far (the fit sample among them), keep
    only the items with the lowest predicted error keepable (certify.keepable_items: the rest go to humans),
    then draw the calibration sample among those by √(predicted error); the drawn items' answers are not in
    the fit."""
    from annotation.routing.services import learned_picks

    data = data if data.embeddings is not None else project_labels(project=project, with_embeddings=True)
    state["items"] = [s.pk for s in data.samples]  # the population the calibration sample is drawn from
    verified = data.verified
    n = len(data.samples)
    scored = learned_picks(
        data=data,
        signals=router_signals(project=project),
        verified=verified,
        excluded=np.zeros(n, dtype=bool),
        size=n,
    )
    predicted = np.zeros(n)
    for pick in scored:
        predicted[pick.index] = pick.priority
    uncertainty = predicted + np.random.default_rng(state["seed"]).uniform(0, TIE_BREAK, n)
    fixed = _labelled_by_humans(data, tasks)
    fit = set(state["fit"])
    fixed |= np.array([s.pk in fit for s in data.samples], dtype=bool)
    outside = ~fixed & ~certify.keepable_items(
        predicted, epsilon=policy.target_error, margin=KEEP_MARGIN, already_human=fixed
    )
    if (fixed | outside).all():  # a tiny project: no region to draw in, so draw among every open item
        outside[:] = False
    state["outside"] = np.flatnonzero(outside).tolist()
    state["keep_margin"] = KEEP_MARGIN
    return _draw(
        state,
        data,
        uncertainty,
        fixed | outside,
        policy=policy,
        seed=state["seed"] + 1,
        uniform_share=LEARNED_UNIFORM_SHARE,
        power=LEARNED_POWER,
    )


def _draw(
    state: dict,
    data,
    uncertainty: np.ndarray,
    fixed: np.ndarray,
    *,
    policy,
    seed: int,
    uniform_share: float = UNIFORM_SHARE,
    power: float = 1.0,
) -> _Step:
    """Draw `calibration_size` calibration draws (with replacement) among the items not in `fixed`."""
    if fixed.all():
        return _Step(state, [], data, waiting="humans label every item already: nothing to certify")
    sampling = certify.calibration_probabilities(
        uncertainty, uniform_share=uniform_share, power=power, already_human=fixed
    )
    draws = certify.draw_calibration(
        sampling, draws=max(1, policy.calibration_size), rng=np.random.default_rng([seed, 1])
    )
    state.update(
        phase=PHASE_CALIBRATION,
        uniform_share=uniform_share,
        power=power,
        u=[float(x) for x in uncertainty],
        q=[float(x) for x in sampling],
        fixed=np.flatnonzero(fixed).tolist(),
        draws=[int(d) for d in draws],
    )
    rows, counts = np.unique(draws, return_counts=True)
    picks = []
    for row, count in zip(rows, counts, strict=True):
        q = float(sampling[row])
        times = f", drawn {count}×" if count > 1 else ""
        picks.append(
            _Pick(
                int(row),
                float(uncertainty[row]),
                f"quality target: calibration draw (q = {q:.4f}{times})",
                1.0 - (1.0 - q) ** len(draws),
                True,
            )
        )
    return _Step(state, picks, data)


def _threshold(state: dict, data: ProjectLabels, tasks: dict, *, policy, project) -> _Step:
    """After calibration: certify the threshold with the current answers and ε, 1 − α; route what it requires;
    once nothing is left to route or answer, ask for a certificate (unless the latest still holds)."""
    outcome = _certified_threshold(state, data, policy=policy, project=project)
    human = outcome["human_rows"]  # rows of `data` humans must label
    verified = data.verified
    picks = []
    threshold_text = _threshold_text(outcome["threshold"])
    outside = {state["items"][i] for i in state.get("outside", [])}
    for row in np.flatnonzero(human & ~verified):
        if data.samples[row].pk in tasks:
            continue  # waiting in the queue, or answered without a decided label (a tie to adjudicate)
        if outcome["new_rows"][row]:
            reason = "quality target: added after the calibration sample, so a human labels it"
        elif not data.valid[row]:
            reason = "quality target: no valid LLM label"
        elif data.samples[row].pk in outside:
            reason = (
                "quality target: predicted error too high to keep its LLM label (outside the keepable items)"
            )
        else:
            reason = f"quality target: above the certified threshold u ≥ {threshold_text}"
        picks.append(_Pick(int(row), float(outcome["u_rows"][row]), reason, 1.0, False))
    state["projection"] = {
        "human_share": outcome["human_share"],
        "threshold": outcome["threshold_stored"],
        "keeps_all": outcome["threshold"] == math.inf,
        "upper_bound": outcome["upper_bound"],
        "epsilon": policy.target_error,
        "confidence": policy.target_confidence,
    }
    if picks:
        state["phase"] = PHASE_THRESHOLD
        return _Step(state, picks, data)
    waiting = sum(1 for row in np.flatnonzero(human & ~verified) if tasks.get(data.samples[row].pk))
    if waiting:
        state["phase"] = PHASE_THRESHOLD
        return _Step(
            state,
            [],
            data,
            waiting=f"{waiting} item{'s' if waiting != 1 else ''} above the threshold await answers",
        )
    state["phase"] = PHASE_CERTIFIED
    latest = LabelCertificate.objects.filter(pk=state.get("certificate_id")).first()
    if (
        latest is not None
        and latest.epsilon == policy.target_error
        and latest.confidence == policy.target_confidence
        and not certificate_is_stale(latest)
    ):
        return _Step(state, [], data, waiting="certified; the certificate still holds")
    return _Step(state, [], data, certify=outcome)


def _certified_threshold(state: dict, data: ProjectLabels, *, policy, project) -> dict:
    """certify_threshold on the stored calibration sample with the current labels, plus what the certificate
    and the threshold batch need, mapped onto the project's current rows."""
    items = state["items"]
    n_population = len(items)
    u = np.asarray(state["u"], dtype=np.float64)
    sampling = np.asarray(state["q"], dtype=np.float64)
    draws = np.asarray(state["draws"], dtype=np.int64)
    fixed = np.zeros(n_population, dtype=bool)
    fixed[state["fixed"]] = True
    row_of = {s.pk: row for row, s in enumerate(data.samples)}
    present = np.array([pk in row_of for pk in items], dtype=bool)
    n_now = len(data.samples)
    loss_of_item = _losses(data, [items[i] for i in np.unique(draws)], row_of)
    loss = np.array([loss_of_item.get(items[d], 1.0) for d in draws])  # a deleted drawn item counts as wrong
    # errors over the N items now ≤ errors over the calibrated population: scale ε when the project shrank
    epsilon = policy.target_error * min(1.0, n_now / n_population) if n_now else policy.target_error
    alpha = 1.0 - policy.target_confidence
    result = certify.certify_threshold(
        u,
        draws=draws,
        sampling=sampling,
        loss=loss,
        epsilon=epsilon,
        alpha=alpha,
        bound=BOUND,
        already_human=fixed,
    )
    kept = (u < result.threshold) & ~fixed
    drawn = np.zeros(n_population, dtype=bool)
    drawn[draws] = True
    # rows of the current project: humans label what the threshold leaves them, and every new sample
    human_rows = np.ones(n_now, dtype=bool)
    u_rows = np.ones(n_now)
    new_rows = np.ones(n_now, dtype=bool)
    for i, pk in enumerate(items):
        row = row_of.get(pk)
        if row is not None:
            human_rows[row] = not kept[i] or drawn[i] or not data.valid[row]
            u_rows[row] = u[i]
            new_rows[row] = False
    # the IPW estimate and two-sided (1 − α) interval of e(λ); the drawn items humans labelled are known
    # exactly, so their errors come off: what remains is the error of the final labels
    terms = certify.ipw_terms(kept=kept, loss=loss, sampling=sampling, draws=draws)
    term_max = 1.0 / (n_population * float(np.min(sampling[sampling > 0])))
    high = certify.betting_upper_bound(terms, alpha=alpha / 2, upper=term_max)
    low = term_max - certify.betting_upper_bound(term_max - terms, alpha=alpha / 2, upper=term_max)
    fixed_errors = (
        sum(loss_of_item.get(items[i], 1.0) for i in np.flatnonzero(kept & drawn & present)) / n_population
    )
    scale = n_population / n_now if n_now else 1.0

    def final(value: float) -> float:
        if not kept.any():  # humans label every item: the error is known, 0 (given the reviewers are right)
            return 0.0
        return float(min(1.0, max(0.0, (value - fixed_errors) * scale)))

    return {
        "threshold": result.threshold,
        "bound": result.bound,
        "threshold_stored": _finite(result.threshold, u),
        "human_rows": human_rows,
        "u_rows": u_rows,
        "new_rows": new_rows,
        "human_share": float(human_rows.mean()) if n_now else 0.0,
        "upper_bound": float(min(1.0, result.upper_bound * scale)) if kept.any() else 0.0,
        "estimated_error": final(float(terms.mean())),
        "ci_low": final(low),
        "ci_high": final(high),
        "epsilon_used": epsilon,
        "draws": len(draws),
        "distinct_draws": int(np.unique(draws).size),
        "fit_items": len(state.get("fit", [])),
        "population": n_population,
        "removed": int((~present).sum()),
        "added": int(new_rows.sum()),
        "draw_errors": float(loss.sum()),
        "uniform_share": state.get("uniform_share", UNIFORM_SHARE),
        "power": state.get("power", 1.0),
        "keep_margin": state.get("keep_margin"),
        "outside": len(state.get("outside", [])),
    }


def _certificate_write(*, project: Project, policy: RoutingPolicy, outcome: dict, data: ProjectLabels):
    human_rows = outcome["human_rows"]
    return LabelCertificate.objects.create(
        project=project,
        epsilon=policy.target_error,
        confidence=policy.target_confidence,
        score=policy.certify_score,
        threshold=outcome["threshold_stored"],
        upper_bound=outcome["upper_bound"],
        estimated_error=outcome["estimated_error"],
        error_ci_low=outcome["ci_low"],
        error_ci_high=outcome["ci_high"],
        item_count=len(data.samples),
        human_count=int(human_rows.sum()),
        calibration_count=outcome["distinct_draws"] + outcome["fit_items"],
        reviewer_agreement=reviewer_agreement(project=project),
        labels_digest=final_labels_digest(project=project),
        # the LLM labels it speaks for (kept, and compared with the calibration answers) came from the stand-in
        is_offline=bool(np.any(data.offline)),
        details={
            "bound": outcome["bound"],
            "draws": outcome["draws"],
            "distinct_draws": outcome["distinct_draws"],
            "draw_errors": outcome["draw_errors"],
            "fit_items": outcome["fit_items"],
            "uniform_share": outcome["uniform_share"],
            "power": outcome["power"],
            "keep_margin": outcome["keep_margin"],
            "outside_keepable": outcome["outside"],
            "epsilon_used": outcome["epsilon_used"],
            "population": outcome["population"],
            "removed_since_calibration": outcome["removed"],
            "added_since_calibration": outcome["added"],
            "awaiting_adjudication": int(
                sum(1 for row in np.flatnonzero(human_rows) if not data.verified[row])
            ),
            "interval": "two-sided (1 − α) betting interval of the IPW estimate at the chosen threshold",
        },
    )


def reviewer_agreement(*, project: Project) -> dict:
    """How far the "reviewers are right" assumption is measured: pairwise agreement of annotators on the items
    two or more answered, and accuracy on gold checks (annotation.review.stats, as the lead's queue page)."""
    label_rows = list(
        HumanAnnotation.objects.filter(sample__project=project, source=HumanSource.REVIEW)
        .exclude(label="")
        .order_by("-created_at", "-id")
        .values_list("sample_id", "annotator_id", "label")
    )
    pairs = review_stats.agreement_by_annotator(label_rows)
    agree = sum(a for a, _ in pairs.values())
    total = sum(t for _, t in pairs.values())
    overlap_items = sum(
        1 for labels in review_stats.latest_label_per_annotator(label_rows).values() if len(labels) > 1
    )
    gold_rows = Assignment.objects.filter(
        task__project=project, task__kind=TaskKind.GOLD, status=AssignmentStatus.ANSWERED
    ).values_list("annotator_id", "answer__label", "task__sample__gold_item__label")
    gold = review_stats.accuracy_by_key((0, answered, known) for _, answered, known in gold_rows if known)
    gold_correct, gold_total = gold.get(0, (0, 0))
    return {
        "overlap_items": overlap_items,
        "agreeing_pairs": agree,
        "pairs": total,
        "agreement": round(agree / total, 4) if total else None,
        "gold_correct": gold_correct,
        "gold_total": gold_total,
        "gold_accuracy": round(gold_correct / gold_total, 4) if gold_total else None,
    }


# ----------------------------------------------------------------------------------------------- helpers


def _fresh_seed() -> int:
    """The seed of a real calibration draw: fresh randomness, stored in the state (tests fix it)."""
    return secrets.randbits(32)


def _rows(step: _Step) -> list[RoutingPreviewRow]:
    data = step.data
    return [
        RoutingPreviewRow(
            data.samples[pick.index],
            pick.priority,
            pick.reason,
            TaskKind.ROUTED,
            data.llm_labels[pick.index],
            bool(data.offline[pick.index]),
            inclusion_probability=pick.inclusion_probability,
            is_audit=pick.is_audit,
        )
        for pick in sorted(step.picks, key=lambda pick: -pick.priority)
    ]


def _prior_error(data: ProjectLabels, signals: dict) -> np.ndarray:
    """The label-free "probably wrong" score per row (router.prior_error_score: LLM least confidence, student
    and neighbour disagreement, as the learned router's cold start); rows without a valid LLM label count as
    fully suspicious, as in the learned router."""
    from annotation.routing import router
    from annotation.routing.services import _signal

    column = {name: index for index, name in enumerate(data.label_names)}
    student = np.array([_signal(signals, s.pk, "student_probability", 0.5) for s in data.samples])
    agreement = np.array([_signal(signals, s.pk, "knn_agreement", 0.5) for s in data.samples])
    student[~data.valid], agreement[~data.valid] = 0.0, 0.0
    items = router.RouterItems(
        probs=data.probs,
        llm_label=np.array([column.get(label, 0) for label in data.llm_labels], dtype=np.int64),
        student_prob=student,
        knn_agreement=agreement,
        text_length=np.array([len(s.text) for s in data.samples]),
    )
    return router.prior_error_score(items)


def _successive_inclusion(sampling: np.ndarray, size: int) -> np.ndarray:
    """π per item of `size` draws without replacement, each ∝ `sampling` among the items not yet drawn
    (numpy's choice with replace=False): Rosén's approximation π_i = 1 − exp(−t · q_i), with t such that the
    π sum to `size`. Recorded on the fit sample's tasks; the bound never uses it."""
    q = np.asarray(sampling, dtype=np.float64)
    if size >= np.count_nonzero(q):
        return (q > 0).astype(np.float64)
    low, high = 0.0, 1.0
    while np.sum(1 - np.exp(-high * q)) < size:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if np.sum(1 - np.exp(-middle * q)) < size else (low, middle)
    return 1 - np.exp(-high * q)


def _llm_uncertainty(data: ProjectLabels) -> np.ndarray:
    """1 − the LLM's probability of its own label (1 where it named no valid label)."""
    column = {name: i for i, name in enumerate(data.label_names)}
    own = np.array(
        [
            data.probs[row, column[label]] if data.valid[row] and label in column else 0.0
            for row, label in enumerate(data.llm_labels)
        ]
    )
    return 1.0 - own


def _task_index(project: Project) -> dict[int, bool]:
    """{sample id: has an open task} for every sample with a non-gold review task."""
    index: dict[int, bool] = {}
    for sample_id, is_open in (
        ReviewTask.objects.filter(project=project)
        .exclude(kind=TaskKind.GOLD)
        .values_list("sample_id", "is_open")
    ):
        index[sample_id] = index.get(sample_id, False) or is_open
    return index


def _labelled_by_humans(data: ProjectLabels, tasks: dict) -> np.ndarray:
    """Items a human labels anyway: verified, without a valid LLM label (nothing to keep), or waiting in the
    queue. They are never drawn (q = 0) and never kept."""
    return np.array(
        [
            data.verified[row] or not data.valid[row] or tasks.get(sample.pk, False)
            for row, sample in enumerate(data.samples)
        ],
        dtype=bool,
    )


def _losses(data: ProjectLabels, sample_ids: list[int], row_of: dict) -> dict[int, float]:
    """Per drawn sample: 1 when its final (human) label differs from the LLM's current label, 0 when it agrees.
    An item whose annotators tied (no decided label yet) counts the share of their answers that differ."""
    losses: dict[int, float] = {}
    undecided = []
    for pk in sample_ids:
        row = row_of.get(pk)
        if row is None:
            continue
        sample = data.samples[row]
        if data.verified[row]:
            losses[pk] = float(sample.final_label != data.llm_labels[row])
        else:
            undecided.append(pk)
    if undecided:
        answers = review_stats.latest_label_per_annotator(
            HumanAnnotation.objects.filter(sample_id__in=undecided)
            .exclude(label="")
            .order_by("-created_at", "-id")
            .values_list("sample_id", "annotator_id", "label")
        )
        for pk in undecided:
            labels = list(answers.get(pk, {}).values())
            llm = data.llm_labels[row_of[pk]]
            losses[pk] = sum(label != llm for label in labels) / len(labels) if labels else 1.0
    return losses


def _answered(project: Project, batches: list[int]) -> tuple[int, int]:
    """(items routed, items with all their answers) in these batches."""
    if not batches:
        return 0, 0
    tasks = ReviewTask.objects.filter(project=project, batch__in=batches)
    return tasks.count(), tasks.filter(is_open=False).count()


def _open_count(project: Project, batches: list[int]) -> int:
    if not batches:
        return 0
    return ReviewTask.objects.filter(project=project, batch__in=batches, is_open=True).count()


def _finite(threshold: float, u: np.ndarray) -> float | None:
    """JSON- and database-safe λ: None when humans label everything (−inf); above every score when every
    LLM label may be kept (+inf)."""
    if threshold == -math.inf:
        return None
    if threshold == math.inf:
        return float(np.max(u)) + 1.0 if u.size else 1.0
    return float(threshold)


def _threshold_text(threshold: float) -> str:
    return "∞" if threshold == math.inf else f"{threshold:.3f}"
