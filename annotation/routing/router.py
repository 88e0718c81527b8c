"""The learned router: which LLM labels humans should check next (ALGORITHMS.md §4 "learn from the humans'
corrections"). Plain numpy / scikit-learn, no Django.

Every human answer tells us whether the LLM was right on that item. After each batch of answers the router
fits a classifier predicting "the LLM label is wrong" from per-item features and routes the unreviewed items
with the highest predicted error next. Before there are enough answers of both kinds (cold start) it ranks by
an unsupervised prior instead and says so in the reasons.

How the labelling service calls it (all arrays aligned by row, one row per sample of the labelling run):

    items = RouterItems(
        probs=...,            # (n, L) float: LLM distribution over the codebook labels, columns in codebook order
        llm_label=...,        # (n,) int: column of the LLM's label in `probs`
        student_prob=...,     # (n,) float: signals.student_oof_probability(embeddings, llm labels)
        knn_agreement=...,    # (n,) float: signals.knn_label_agreement(embeddings, llm labels)
        text_length=...,      # (n,) int: len(sample.text)
        conditions=None,      # optional (n, c) float: one-hot generation conditions and config (see
                              #   one_hot_conditions; annotation.routing.provenance.router_conditions)
        condition_names=None, # optional c names of those columns ("topic=sport", "config=Reviews v3")
        neighbours=None,      # optional (n, k) int: cosine_knn(embeddings, k)[0] — lets answers on similar
                              #   items inform each other ("neighbours were wrong")
        embeddings=None,      # optional (n, d) float: sentence embeddings; with reviewed_labels below, a
                              #   student trained on the humans' labels checks the LLM (the strongest feature
                              #   where the LLM's mistakes are systematic)
    )
    batch = route_next_batch(
        items,
        reviewed=np.array([...]),         # row indices humans have answered
        llm_was_wrong=np.array([...]),    # bool per reviewed row: human final label != LLM label
        batch_size=50,
        exclude=np.array([...]),          # rows already routed and still open (never routed twice)
        reviewed_labels=np.array([...]),  # optional: column (in `probs`) of the humans' final label per
                                          #   reviewed row, -1 if not a codebook label
    )
    batch.indices            # rows to route, best first
    batch.error_probability  # predicted P(LLM wrong) per routed row (the cold-start prior when batch.mode == "cold_start")
    batch.reasons            # e.g. "predicted error 0.71; student disagrees with LLM; entropy 0.93", and
                             #   "condition topic=sport: LLM wrong on 7 of 9 reviewed" where that condition
                             #   adds the most to the item's predicted error
    batch.mode               # "learned" or "cold_start"

Measured on shared/data/routing/stance.csv (batches of 5%, budget 20%): see bench_routing and the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from annotation.routing.selection import entropy, least_confidence, margin_uncertainty

# Fewer answers than this, or answers of only one kind, and the classifier is not trusted yet.
MIN_ANSWERS_TO_LEARN = 20
MIN_ANSWERS_PER_CLASS = 3
# cross_fitted_error's folds (five: each model sees 80 % of the answers)
CROSS_FIT_FOLDS = 5
# With more labels than this, per-label indicator features are too sparse for a few hundred answers and made
# routing worse (BANKING77, 77 labels: error capture 0.60 with them, 0.64 without, at a 20% budget).
MAX_LABELS_ONE_HOT = 10
# A condition column is a feature only with at least this many reviewed items with the value and without it (a
# coefficient fitted on one or two answers is noise), and at most MAX_CONDITION_COLUMNS of them (the most
# balanced over the answers), so a topic tree with hundreds of values does not swamp a few hundred answers.
MIN_CONDITION_ANSWERS = 3
MAX_CONDITION_COLUMNS = 30


@dataclass(frozen=True)
class RouterItems:
    """Per-item inputs of the router; see the module docstring for where each comes from."""

    probs: np.ndarray
    llm_label: np.ndarray
    student_prob: np.ndarray
    knn_agreement: np.ndarray
    text_length: np.ndarray
    conditions: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    condition_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.llm_label)
        for name in ("probs", "student_prob", "knn_agreement", "text_length"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RouterItems.{name} has {len(getattr(self, name))} rows, llm_label has {n}")
        for name in ("conditions", "neighbours", "embeddings"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"RouterItems.{name} has {len(value)} rows, llm_label has {n}")
        if self.condition_names is not None:
            columns = 0 if self.conditions is None else np.asarray(self.conditions).shape[1]
            if len(self.condition_names) != columns:
                raise ValueError(
                    f"RouterItems has {len(self.condition_names)} condition names, {columns} columns"
                )

    def condition_name(self, column: int) -> str:
        return (
            str(self.condition_names[column]) if self.condition_names is not None else f"condition_{column}"
        )

    @property
    def n(self) -> int:
        return len(self.llm_label)


@dataclass(frozen=True)
class RoutingBatch:
    indices: np.ndarray
    error_probability: np.ndarray
    reasons: list[str]
    mode: str  # "learned" | "cold_start"
    details: dict = field(default_factory=dict)


def one_hot_conditions(conditions: Sequence[Mapping[str, object]]) -> tuple[np.ndarray, list[str]]:
    """(n, c) one-hot matrix and column names ("topic=sport") from per-sample condition dicts."""
    names = sorted({f"{key}={value}" for row in conditions for key, value in row.items()})
    column = {name: position for position, name in enumerate(names)}
    matrix = np.zeros((len(conditions), len(names)), dtype=np.float64)
    for row_index, row in enumerate(conditions):
        for key, value in row.items():
            matrix[row_index, column[f"{key}={value}"]] = 1.0
    return matrix, names


def _rank_normalise(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (ties share a rank), so signals on different scales can be averaged."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= 1:
        return np.zeros(n)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(n, dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    for start, stop in zip(np.r_[0, boundaries], np.r_[boundaries, n], strict=True):
        ranks[order[start:stop]] = (start + stop - 1) / 2
    return ranks / (n - 1)


def prior_error_score(items: RouterItems) -> np.ndarray:
    """Unsupervised "probably wrong" score in [0, 1]: the mean rank of LLM uncertainty (least confidence),
    student disagreement (1 − student prob) and neighbour disagreement (1 − kNN agreement)."""
    parts = [
        _rank_normalise(least_confidence(items.probs)),
        _rank_normalise(1.0 - np.asarray(items.student_prob, dtype=np.float64)),
        _rank_normalise(1.0 - np.asarray(items.knn_agreement, dtype=np.float64)),
    ]
    return np.mean(parts, axis=0)


def neighbour_error_rate(
    items: RouterItems,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    *,
    prior: float,
    strength: float = 2.0,
) -> np.ndarray:
    """Per item, the smoothed share of its reviewed neighbours on which the LLM was wrong:
    (wrong + strength·prior) / (reviewed + strength). Items without neighbours get `prior`."""
    n = items.n
    if items.neighbours is None or items.neighbours.shape[1] == 0:
        return np.full(n, prior)
    known = np.full(n, np.nan)
    known[reviewed] = llm_was_wrong.astype(np.float64)
    neighbour_known = known[items.neighbours]
    reviewed_count = np.sum(~np.isnan(neighbour_known), axis=1)
    wrong_count = np.nansum(neighbour_known, axis=1)
    return (wrong_count + strength * prior) / (reviewed_count + strength)


def usable_condition_columns(items: RouterItems, reviewed: np.ndarray) -> np.ndarray:
    """The condition columns worth a coefficient: MIN_CONDITION_ANSWERS reviewed items with the value and as
    many without it, at most MAX_CONDITION_COLUMNS (the most balanced first; ties: lower column)."""
    if items.conditions is None or len(reviewed) == 0:
        return np.zeros(0, dtype=np.int64)
    on = (np.asarray(items.conditions)[np.asarray(reviewed, dtype=np.int64)] > 0).sum(axis=0)
    balance = np.minimum(on, len(reviewed) - on)
    usable = np.flatnonzero(balance >= MIN_CONDITION_ANSWERS)
    usable = usable[np.argsort(-balance[usable], kind="stable")][:MAX_CONDITION_COLUMNS]
    return np.sort(usable).astype(np.int64)


def feature_matrix(
    items: RouterItems,
    *,
    neighbour_errors: np.ndarray | None = None,
    human_student_prob: np.ndarray | None = None,
    condition_columns: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The classifier's features per item and their names; `condition_columns` limits the condition
    columns used (default all)."""
    probs = np.asarray(items.probs, dtype=np.float64)
    n, n_labels = probs.shape
    columns: list[np.ndarray] = [
        1.0 - least_confidence(probs),
        entropy(probs),
        -margin_uncertainty(probs),
        np.asarray(items.student_prob, dtype=np.float64),
        np.asarray(items.knn_agreement, dtype=np.float64),
        np.log1p(np.asarray(items.text_length, dtype=np.float64)),
    ]
    names = ["llm_confidence", "llm_entropy", "llm_margin", "student_prob", "knn_agreement", "log_length"]
    if n_labels <= MAX_LABELS_ONE_HOT:
        label_one_hot = np.zeros((n, n_labels))
        label_one_hot[np.arange(n), np.asarray(items.llm_label, dtype=np.int64)] = 1.0
        columns += list(label_one_hot.T)
        names += [f"llm_label={label}" for label in range(n_labels)]
    if items.conditions is not None:
        conditions = np.asarray(items.conditions, dtype=np.float64)
        kept = range(conditions.shape[1]) if condition_columns is None else condition_columns
        columns += [conditions[:, c] for c in kept]
        names += [items.condition_name(int(c)) for c in kept]
    if neighbour_errors is not None:
        columns.append(neighbour_errors)
        names.append("neighbour_error_rate")
    if human_student_prob is not None:
        columns.append(human_student_prob)
        names.append("human_student_prob")
    return np.column_stack(columns), names


HUMAN_STUDENT_FOLDS = 5


def human_student_probability(
    items: RouterItems, *, reviewed: np.ndarray, reviewed_labels: np.ndarray, seed: int = 0
) -> np.ndarray | None:
    """Per item, the probability of the LLM's label under a logistic regression trained on the humans' labels
    of the reviewed items (embeddings → label); out of fold for the reviewed items themselves, so the error
    classifier is trained on honest values. None without embeddings or with fewer than two human labels.
    Reviewed rows whose human label is not a codebook label (−1) are left out of the student."""
    if items.embeddings is None:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    embeddings = np.asarray(items.embeddings, dtype=np.float64)
    llm_label = np.asarray(items.llm_label, dtype=np.int64)
    n_labels = np.asarray(items.probs).shape[1]
    usable = np.asarray(reviewed_labels) >= 0
    train_rows = np.asarray(reviewed, dtype=np.int64)[usable]
    train_labels = np.asarray(reviewed_labels, dtype=np.int64)[usable]
    if np.unique(train_labels).size < 2 or len(train_rows) < 2 * HUMAN_STUDENT_FOLDS:
        return None

    def probability_of_llm_label(fit_on: np.ndarray, rows: np.ndarray) -> np.ndarray:
        classes = np.unique(train_labels[fit_on])
        if classes.size == 1:
            return (llm_label[rows] == classes[0]).astype(np.float64)
        student = LogisticRegression(max_iter=1000).fit(embeddings[train_rows[fit_on]], train_labels[fit_on])
        full = np.zeros((len(rows), n_labels))
        full[:, student.classes_] = student.predict_proba(embeddings[rows])
        return full[np.arange(len(rows)), llm_label[rows]]

    result = np.empty(items.n, dtype=np.float64)
    others = np.ones(items.n, dtype=bool)
    others[train_rows] = False
    result[others] = probability_of_llm_label(np.arange(len(train_rows)), np.flatnonzero(others))
    folds = KFold(HUMAN_STUDENT_FOLDS, shuffle=True, random_state=seed)
    for fit_on, held_out in folds.split(train_rows):
        result[train_rows[held_out]] = probability_of_llm_label(fit_on, train_rows[held_out])
    # reviewed rows without a codebook label: the student saw nothing for them, give the neutral 1/L
    unlabelled = np.asarray(reviewed, dtype=np.int64)[~usable]
    result[unlabelled] = 1.0 / n_labels
    return result


@dataclass(frozen=True)
class ErrorPrediction:
    """P(LLM wrong) per item; `mode` "learned" or "cold_start" (then `probability` is the prior score, which
    ranks but is not calibrated); `human_student_prob` when a student on the humans' labels was fitted."""

    probability: np.ndarray
    mode: str
    human_student_prob: np.ndarray | None = None
    # per item, the condition column (of items.conditions) that adds the most to its predicted error of all
    # features, or −1 (learned mode with condition features only)
    dominant_condition: np.ndarray | None = None


def predict_error(
    items: RouterItems,
    *,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    reviewed_labels: np.ndarray | None = None,
    seed: int = 0,
    human_student_prob: np.ndarray | None = None,
) -> ErrorPrediction:
    """Fit "LLM label is wrong" on the answers so far (logistic regression on standardised features) and
    predict it for every item; the cold-start prior while answers are too few or all of one kind.
    `human_student_prob`, when given, is used instead of fitting the human student on `reviewed_labels`."""
    reviewed = np.asarray(reviewed, dtype=np.int64)
    llm_was_wrong = np.asarray(llm_was_wrong, dtype=bool)
    if len(reviewed) != len(llm_was_wrong):
        raise ValueError("reviewed and llm_was_wrong must have the same length")
    if reviewed_labels is not None and len(reviewed_labels) != len(reviewed):
        raise ValueError("reviewed_labels and reviewed must have the same length")
    wrong = int(llm_was_wrong.sum())
    right = len(llm_was_wrong) - wrong
    if len(reviewed) < MIN_ANSWERS_TO_LEARN or min(wrong, right) < MIN_ANSWERS_PER_CLASS:
        return ErrorPrediction(prior_error_score(items), "cold_start")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    human_student = human_student_prob
    if human_student is None and reviewed_labels is not None:
        human_student = human_student_probability(
            items, reviewed=reviewed, reviewed_labels=np.asarray(reviewed_labels), seed=seed
        )
    condition_columns = usable_condition_columns(items, reviewed)
    features, names = feature_matrix(
        items,
        neighbour_errors=neighbour_error_rate(items, reviewed, llm_was_wrong, prior=wrong / len(reviewed)),
        human_student_prob=human_student,
        condition_columns=condition_columns,
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    model.fit(features[reviewed], llm_was_wrong)
    dominant = None
    if condition_columns.size:
        # each feature's share of the logit: coefficient × standardised value. The condition columns come
        # right before neighbour_error_rate and the optional human_student_prob (feature_matrix's order).
        scaler, classifier = model[0], model[-1]
        contributions = (features - scaler.mean_) / scaler.scale_ * classifier.coef_[0]
        first = len(names) - condition_columns.size - 1 - (human_student is not None)
        # a condition speaks for an item only through a value it has: the absence of a "safe" value (a
        # negative coefficient times a below-mean 0) is no reason to name that value
        condition_block = contributions[:, first : first + condition_columns.size]
        condition_block[features[:, first : first + condition_columns.size] <= 0] = -np.inf
        strongest = contributions.argmax(axis=1)
        offset = strongest - first
        is_condition = (offset >= 0) & (offset < condition_columns.size)
        is_condition &= contributions[np.arange(items.n), strongest] > 0
        dominant = np.where(
            is_condition, condition_columns[np.clip(offset, 0, condition_columns.size - 1)], -1
        )
    return ErrorPrediction(model.predict_proba(features)[:, 1], "learned", human_student, dominant)


def cross_fitted_error(
    items: RouterItems,
    *,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    reviewed_labels: np.ndarray | None = None,
    folds: int = CROSS_FIT_FOLDS,
    seed: int = 0,
) -> np.ndarray | None:
    """P(LLM wrong) per item, cross-fitted (Zrnic & Candès 2024, cross-prediction-powered inference): the reviewed
    items are split into `folds`; a reviewed item's value comes from the model fitted on the other folds (it
    never saw that item's answer), every other item's is the mean of the fold models. An estimate that uses
    these as its predictions stays unbiased although the predictions learned from the same answers. None when
    a fold's model cannot learn yet (too few answers, or all of one kind)."""
    reviewed = np.asarray(reviewed, dtype=np.int64)
    llm_was_wrong = np.asarray(llm_was_wrong, dtype=bool)
    if len(reviewed) < folds * MIN_ANSWERS_PER_CLASS:
        return None
    # the human student once, out of fold for the reviewed items (each one's value is from a student that did
    # not see its label); refitting it per fold would cost five times as much for little (its labels reach a
    # held-out item's prediction only through the other items' features)
    human = (
        None
        if reviewed_labels is None
        else human_student_probability(items, reviewed=reviewed, reviewed_labels=reviewed_labels, seed=seed)
    )
    order = np.random.default_rng(seed).permutation(len(reviewed))
    result = np.zeros(items.n)
    out_of_fold = np.zeros(items.n)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(np.arange(len(reviewed)), part)
        prediction = predict_error(
            items,
            reviewed=reviewed[train],
            llm_was_wrong=llm_was_wrong[train],
            seed=seed,
            human_student_prob=human,
        )
        if prediction.mode != "learned":
            return None
        result += prediction.probability / folds
        out_of_fold[reviewed[part]] = prediction.probability[reviewed[part]]
    result[reviewed] = out_of_fold[reviewed]
    return result


def routing_reason(
    items: RouterItems,
    index: int,
    *,
    error_probability: float,
    mode: str,
    human_student_prob: float | None = None,
    condition_note: str | None = None,
) -> str:
    """Why one item was routed, for reviewers and leads."""
    parts = [
        f"predicted error {error_probability:.2f}" if mode == "learned" else "cold start: uncertainty ranking"
    ]
    if condition_note:
        parts.append(condition_note)
    if human_student_prob is not None and human_student_prob < 0.5:
        parts.append("model trained on reviewers' labels disagrees")
    if items.student_prob[index] < 0.5:
        parts.append("student disagrees with LLM")
    if items.knn_agreement[index] < 0.5:
        parts.append("neighbours labelled differently")
    row_entropy = float(entropy(np.asarray(items.probs)[index : index + 1])[0])
    parts.append(f"entropy {row_entropy:.2f}")
    return "; ".join(parts)


def route_next_batch(
    items: RouterItems,
    *,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    batch_size: int,
    exclude: np.ndarray | None = None,
    reviewed_labels: np.ndarray | None = None,
    seed: int = 0,
) -> RoutingBatch:
    """The next `batch_size` unreviewed, not-excluded items by predicted error (ties: lower index)."""
    reviewed = np.asarray(reviewed, dtype=np.int64)
    prediction = predict_error(
        items, reviewed=reviewed, llm_was_wrong=llm_was_wrong, reviewed_labels=reviewed_labels, seed=seed
    )
    error_probability, mode = prediction.probability, prediction.mode
    available = np.ones(items.n, dtype=bool)
    available[reviewed] = False
    if exclude is not None:
        available[np.asarray(exclude, dtype=np.int64)] = False
    candidates = np.flatnonzero(available)
    chosen = candidates[np.argsort(-error_probability[candidates], kind="stable")][: max(0, batch_size)]
    human = prediction.human_student_prob
    reasons = [
        routing_reason(
            items,
            int(i),
            error_probability=float(error_probability[i]),
            mode=mode,
            human_student_prob=None if human is None else float(human[i]),
            condition_note=_condition_note(items, prediction, int(i), reviewed, llm_was_wrong),
        )
        for i in chosen
    ]
    return RoutingBatch(
        indices=chosen.astype(np.int64),
        error_probability=error_probability[chosen],
        reasons=reasons,
        mode=mode,
        details={"answers": len(reviewed), "llm_wrong_in_answers": int(np.sum(llm_was_wrong))},
    )


def _condition_note(
    items: RouterItems,
    prediction: ErrorPrediction,
    index: int,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
) -> str | None:
    """ "condition topic=sport: LLM wrong on 7 of 9 reviewed" when that condition adds the most to the item's
    predicted error; None otherwise."""
    if (
        prediction.dominant_condition is None
        or prediction.dominant_condition[index] < 0
        or items.conditions is None
    ):
        return None
    column = int(prediction.dominant_condition[index])
    with_value = np.asarray(items.conditions)[reviewed, column] > 0
    wrong = int(np.sum(np.asarray(llm_was_wrong, dtype=bool)[with_value]))
    return (
        f"condition {items.condition_name(column)}: LLM wrong on {wrong} of {int(with_value.sum())} reviewed"
    )
