"""Evaluation metrics as plain functions over lists and arrays (no Django): survey §3.3 / ALGORITHMS.md §7.

Faithfulness (Wilson interval), agreement (Cohen, Fleiss, Krippendorff nominal), human-vs-LLM confusion,
lexical and embedding diversity (distinct-n, Self-BLEU, mean pairwise cosine distance, Vendi score,
near-duplicate rate) and preference ratings (Elo, Bradley-Terry). Cohen's kappa, the confusion matrix and
macro F1 are sklearn's; tests check the rest against statsmodels and the `krippendorff` package.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from sklearn import metrics as sklearn_metrics

from synthstudio.vectors import cosine_knn, normalise_rows

# ---------------------------------------------------------------- faithfulness: Wilson interval


@dataclass(frozen=True)
class Proportion:
    successes: int
    n: int
    share: float
    low: float
    high: float

    @property
    def margin(self) -> float:
        return (self.high - self.low) / 2


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> Proportion:
    """Wilson score interval for a binomial share (Wilson 1927). n = 0 gives the uninformative [0, 1]."""
    if n <= 0:
        return Proportion(0, 0, 0.0, 0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Proportion(successes, n, p, max(0.0, centre - half), min(1.0, centre + half))


def ratings_for_margin(share: float, margin: float, *, z: float = 1.96) -> int:
    """Smallest n whose Wilson interval around `share` has half-width ≤ margin.

    Solved exactly: half-width is decreasing in n, so a doubling search then bisection over integers.
    """
    if not 0 < margin < 0.5:
        raise ValueError("margin must be in (0, 0.5)")
    share = min(1.0, max(0.0, share))

    def half_width(n: int) -> float:
        denominator = 1 + z * z / n
        return z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator

    high = 1
    while half_width(high) > margin:
        high *= 2
    low = high // 2 if high > 1 else 1
    while low < high:
        middle = (low + high) // 2
        if half_width(middle) <= margin:
            high = middle
        else:
            low = middle + 1
    return high


# ---------------------------------------------------------------- agreement


def cohen_kappa(rater_a: Sequence[Hashable], rater_b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters over the same items (Cohen 1960), by sklearn's cohen_kappa_score.
    NaN when there are no items or chance agreement is 1 (both raters always gave the same one value)."""
    if len(rater_a) != len(rater_b):
        raise ValueError("both raters must rate the same items")
    if not rater_a or len(set(rater_a) | set(rater_b)) < 2:
        return float("nan")
    return float(sklearn_metrics.cohen_kappa_score([str(v) for v in rater_a], [str(v) for v in rater_b]))


def category_counts(
    items: Sequence[Sequence[Hashable]], categories: Sequence[Hashable] | None = None
) -> np.ndarray:
    """Items × categories table of how many raters chose each category (Fleiss' input)."""
    if categories is None:
        categories = sorted({value for ratings in items for value in ratings}, key=str)
    column = {c: j for j, c in enumerate(categories)}
    table = np.zeros((len(items), len(categories)), dtype=np.int64)
    for i, ratings in enumerate(items):
        for value in ratings:
            table[i, column[value]] += 1
    return table


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa from an items × categories count table with the same number of raters per item.
    By hand: the maintained implementation (statsmodels.stats.inter_rater.fleiss_kappa) is a dev-only
    dependency here; the tests check this one against it."""
    table = np.asarray(table, dtype=np.float64)
    n_items = table.shape[0]
    raters = table.sum(axis=1)
    if n_items == 0 or not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (≥ 2) of raters for every item")
    m = raters[0]
    p_category = table.sum(axis=0) / (n_items * m)
    p_item = ((table * table).sum(axis=1) - m) / (m * (m - 1))
    p_bar, p_expected = p_item.mean(), (p_category * p_category).sum()
    if p_expected == 1:
        return float("nan")
    return float((p_bar - p_expected) / (1 - p_expected))


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha, nominal level, any number of raters per unit; None marks a missing value.

    `units` is a list of units, each the list of values its raters gave (Krippendorff 2011, coincidence
    matrix form). Units with fewer than two values are not pairable and are ignored. By hand: the
    `krippendorff` package is not a runtime dependency; the tests check this one against it.
    """
    coincidences: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None and not (isinstance(v, float) and math.isnan(v))]
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += pairs / (m - 1)
    marginals: dict[Hashable, float] = defaultdict(float)
    for (c, _k), value in coincidences.items():
        marginals[c] += value
    n = sum(marginals.values())
    if n <= 1:
        return float("nan")
    disagreement_observed = sum(value for (c, k), value in coincidences.items() if c != k)
    disagreement_expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    if disagreement_expected == 0:
        return float("nan")
    return 1 - (n - 1) * disagreement_observed / disagreement_expected


Unit = TypeVar("Unit", bound=Hashable)
Rater = TypeVar("Rater", bound=Hashable)


def rater_agreement(units: Mapping[Unit, Mapping[Rater, str]], rater_names: Mapping[Rater, str]) -> dict:
    """Agreement of raters over units ({unit: {rater: value}}): Cohen per rater pair, Fleiss' kappa when every
    unit with ≥ 2 ratings has the same number of raters, Krippendorff's alpha (nominal) always."""
    overlap = {u: r for u, r in units.items() if len(r) >= 2}
    raters = sorted(
        {r for ratings in overlap.values() for r in ratings}, key=lambda r: rater_names.get(r, str(r))
    )
    pairs = []
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            shared = [(r[a], r[b]) for r in overlap.values() if a in r and b in r]
            if len(shared) >= 2:
                kappa = cohen_kappa([x for x, _ in shared], [y for _, y in shared])
                pairs.append({"a": rater_names.get(a, str(a)), "b": rater_names.get(b, str(b)), "n": len(shared),
                              "kappa": None if np.isnan(kappa) else kappa})  # fmt: skip
    counts = {len(r) for r in overlap.values()}
    fleiss, fleiss_note = None, ""
    if len(counts) == 1 and overlap:
        value = fleiss_kappa(category_counts([list(r.values()) for r in overlap.values()]))
        fleiss = None if np.isnan(value) else value
    elif overlap:
        fleiss_note = "raters per item vary: see Krippendorff's alpha"
    alpha = (
        krippendorff_alpha_nominal([list(r.values()) for r in overlap.values()]) if overlap else float("nan")
    )
    return {
        "items": len(overlap),
        "raters": len(raters),
        "pairs": pairs,
        "fleiss": fleiss,
        "fleiss_note": fleiss_note,
        "krippendorff": None if np.isnan(alpha) else alpha,
    }


@dataclass(frozen=True)
class LabelScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Rows: truth (humans), columns: prediction (LLM), in the order of `labels`; pairs with a value outside
    `labels` are skipped (sklearn's confusion_matrix)."""
    if not labels or not truth:
        return np.zeros((len(labels), len(labels)), dtype=np.int64)
    return sklearn_metrics.confusion_matrix(list(truth), list(predicted), labels=list(labels)).astype(
        np.int64
    )


def per_label_scores(matrix: np.ndarray, labels: Sequence[str]) -> list[LabelScore]:
    """Precision, recall and F1 of the column rater (the LLM) against the row rater (humans), per label.
    From the confusion matrix itself (sklearn's precision_recall_fscore_support wants the raw label
    lists, which callers have already folded into the matrix); 0 where undefined, as sklearn's
    zero_division=0."""
    scores = []
    for i, label in enumerate(labels):
        true_positive = float(matrix[i, i])
        predicted, actual = float(matrix[:, i].sum()), float(matrix[i, :].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(LabelScore(label, precision, recall, f1, int(actual)))
    return scores


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over every label either side used (sklearn's f1_score, average="macro")."""
    labels = sorted(set(truth) | set(predicted))
    if not labels:
        return 0.0
    return float(
        sklearn_metrics.f1_score(
            list(truth), list(predicted), labels=labels, average="macro", zero_division=0
        )
    )


def entropy(distribution: Iterable[float]) -> float:
    return float(-sum(p * math.log(p) for p in distribution if p > 0))


# ---------------------------------------------------------------- lexical diversity

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def vocabulary_size(token_lists: Iterable[Sequence[str]]) -> int:
    return len({token for tokens in token_lists for token in tokens})


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Unique n-grams / total n-grams over the whole set (Li et al. 2016). 0 when there are none."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = ngrams(tokens, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def top_ngrams(token_lists: Iterable[Sequence[str]], n: int, k: int = 10) -> list[tuple[str, int]]:
    return ngram_stats(token_lists, n, k)[1]


def ngram_stats(
    token_lists: Iterable[Sequence[str]], n: int, k: int = 10
) -> tuple[float, list[tuple[str, int]]]:
    """distinct-n and the k most frequent n-grams (ties alphabetically) from one counting pass."""
    counts: Counter[tuple[str, ...]] = Counter()
    for tokens in token_lists:
        counts.update(ngrams(tokens, n))
    total = sum(counts.values())
    top = heapq.nsmallest(k, counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return (len(counts) / total if total else 0.0), [(" ".join(gram), count) for gram, count in top]


def self_bleu(token_lists: Sequence[Sequence[str]], *, max_n: int = 4) -> float:
    """Mean BLEU of each text against all the others as references (Zhu et al. 2018); lower = more diverse.

    Corpus-free sentence BLEU with clipped n-gram precision (clip = max count in any other text), the
    brevity penalty against the closest reference length, uniform weights and +1 smoothing of the n > 1
    precisions (Lin & Och 2004) so short texts do not zero the score. Cost O(total n-grams + n·distinct
    lengths): the maximum count over "all other texts" comes from each n-gram's top two counts.
    """
    n_texts = len(token_lists)
    if n_texts < 2:
        return 0.0
    counts_per_order = []
    for order in range(1, max_n + 1):
        per_text = [Counter(ngrams(tokens, order)) for tokens in token_lists]
        best: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for index, counts in enumerate(per_text):
            for gram, count in counts.items():
                top = best.setdefault(gram, [])
                top.append((count, index))
                if len(top) > 2:
                    top.sort(reverse=True)
                    del top[2:]
        counts_per_order.append((per_text, best))
    lengths = np.array([len(tokens) for tokens in token_lists])
    scores = []
    for index, tokens in enumerate(token_lists):
        length = len(tokens)
        if length == 0:
            scores.append(0.0)
            continue
        log_precision = 0.0
        for order, (per_text, best) in enumerate(counts_per_order, start=1):
            matched = 0
            total = max(0, length - order + 1)
            for gram, count in per_text[index].items():
                others = [c for c, i in sorted(best[gram], reverse=True) if i != index]
                matched += min(count, others[0]) if others else 0
            if order == 1:
                if matched == 0:
                    log_precision = -math.inf
                    break
                log_precision += math.log(matched / total)
            else:
                log_precision += math.log((matched + 1) / (total + 1))
        if log_precision == -math.inf:
            scores.append(0.0)
            continue
        closest = min(np.delete(lengths, index).tolist(), key=lambda r: (abs(r - length), r))
        brevity = 1.0 if length > closest else math.exp(1 - closest / length)
        scores.append(brevity * math.exp(log_precision / max_n))
    return float(np.mean(scores))


# ---------------------------------------------------------------- embedding diversity


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """1 − mean cosine similarity over all ordered pairs i ≠ j, in O(n·d): for unit rows ê_i,
    Σ_{i≠j} ê_i·ê_j = ‖Σ ê_i‖² − n."""
    unit = normalise_rows(vectors, dtype=np.float64)
    n = unit.shape[0]
    if n < 2:
        return 0.0
    total = unit.sum(axis=0)
    return float(1 - (total @ total - n) / (n * (n - 1)))


def vendi_score(vectors: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp of the Shannon entropy of the
    eigenvalues of K/n. Needs the n×n kernel, so callers pass a sample. Ranges from 1 to n."""
    unit = normalise_rows(vectors, dtype=np.float64)
    n = unit.shape[0]
    if n == 0:
        return 0.0
    # the non-zero eigenvalues of X Xᵀ equal those of Xᵀ X (d×d): cheaper when d < n
    gram = unit.T @ unit if unit.shape[1] < n else unit @ unit.T
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(math.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def near_duplicate_rate(
    vectors: np.ndarray, *, threshold: float = 0.95, sample: int | None = None, seed: int = 0
) -> float:
    """Share of items whose nearest other item has cosine similarity ≥ threshold.

    With `sample`, the rate is estimated on that many random items, each compared with every other item
    (O(sample·n·d) instead of O(n²·d)); without it every item is checked (blocked kNN, synthstudio.vectors).
    """
    n = len(vectors)
    if n < 2:
        return 0.0
    if sample is None or sample >= n:
        _, similarities = cosine_knn(np.asarray(vectors, dtype=np.float32), 1)
        return float((similarities[:, 0] >= threshold).mean())
    unit = normalise_rows(vectors, dtype=np.float64).astype(np.float32)
    picked = np.random.default_rng(seed).choice(n, size=sample, replace=False)
    hits = 0
    for start in range(0, sample, 256):  # 256 × n float32 similarities per block (100 MB at n = 100,000)
        rows = picked[start : start + 256]
        block = unit[rows] @ unit.T
        block[np.arange(len(rows)), rows] = -np.inf  # never your own neighbour
        hits += int((block.max(axis=1) >= threshold).sum())
    return hits / sample


# ---------------------------------------------------------------- preferences: Elo and Bradley-Terry

# A match: (player_a, player_b, score of a) with score 1 = a wins, 0 = b wins, 0.5 = tie.
Match = tuple[str, str, float]

ELO_K, ELO_SCALE, ELO_BASE, ELO_INITIAL = 4.0, 400.0, 10.0, 1000.0


def elo_ratings(
    matches: Iterable[Match],
    *,
    k: float = ELO_K,
    scale: float = ELO_SCALE,
    base: float = ELO_BASE,
    initial: float = ELO_INITIAL,
) -> dict[str, float]:
    """Online Elo in the given order: E_a = 1 / (1 + base^((R_b − R_a)/scale)), R_a += k (S_a − E_a)."""
    ratings: dict[str, float] = {}
    for a, b, score in matches:
        ra, rb = ratings.setdefault(a, initial), ratings.setdefault(b, initial)
        expected_a = 1 / (1 + base ** ((rb - ra) / scale))
        ratings[a] = ra + k * (score - expected_a)
        ratings[b] = rb - k * (score - expected_a)
    return ratings


def bradley_terry(
    matches: Sequence[Match], *, iterations: int = 10_000, tolerance: float = 1e-12
) -> dict[str, float]:
    """Bradley-Terry strengths by maximum likelihood with the MM algorithm (Zermelo 1929; Hunter 2004).

    A tie counts as half a win for each side. Strengths are normalised to geometric mean 1. A player with no
    wins has MLE strength 0; a tiny prior (0.01 of a tie against every opponent) keeps them finite.
    """
    players = sorted({p for a, b, _ in matches for p in (a, b)})
    index = {p: i for i, p in enumerate(players)}
    m = len(players)
    if m == 0:
        return {}
    wins = np.zeros(m)
    games = np.zeros((m, m))
    for a, b, score in matches:
        i, j = index[a], index[b]
        wins[i] += score
        wins[j] += 1 - score
        games[i, j] += 1
        games[j, i] += 1
    if np.any(wins == 0) or np.any(wins == games.sum(axis=1)):
        prior = 0.01 * (np.ones((m, m)) - np.eye(m))
        games = games + prior
        wins = wins + prior.sum(axis=1) / 2
    strength = np.ones(m)
    for _ in range(iterations):
        denominator = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        updated = wins / denominator
        updated /= math.exp(np.log(updated).mean())
        change = np.max(np.abs(updated - strength))
        strength = updated
        if change < tolerance:
            break
    return {p: float(strength[index[p]]) for p in players}


def bt_to_elo_scale(strengths: dict[str, float]) -> dict[str, float]:
    """Bradley-Terry strengths on the Elo scale (400·log10 p + 1000), so both columns read alike."""
    return {p: ELO_SCALE * math.log10(s) + ELO_INITIAL for p, s in strengths.items()}


@dataclass(frozen=True)
class Rating:
    player: str
    rating: float
    low: float
    high: float
    games: int
    in_order: float | None = None  # Elo only: the rating from the judgments in their recorded order


def _bootstrap(matches: Sequence[Match], rate, *, rounds: int, seed: int) -> dict[str, np.ndarray]:
    """Ratings of each player over `rounds` resamples of the matches (with replacement, which also
    shuffles the order that Elo depends on)."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    n = len(matches)
    for _ in range(rounds):
        picked = [matches[i] for i in rng.integers(0, n, size=n)]
        for player, value in rate(picked).items():
            samples.setdefault(player, []).append(value)
    return {p: np.asarray(v) for p, v in samples.items()}


def _games_per_player(matches: Sequence[Match]) -> Counter[str]:
    games: Counter[str] = Counter()
    for a, b, _ in matches:
        games[a] += 1
        games[b] += 1
    return games


def elo_leaderboard(matches: Sequence[Match], *, rounds: int = 200, seed: int = 0) -> list[Rating]:
    """Elo over bootstrap resamples in shuffled order: the median is the rating and the 2.5–97.5 percentiles
    the 95% interval (Chatbot Arena's practice: with K = 4 one fixed order can sit far from the typical
    rating). The rating in the recorded order is kept as `in_order`. Best first."""
    in_order = elo_ratings(matches)
    games = _games_per_player(matches)
    if not matches:
        return []
    spread = _bootstrap(matches, elo_ratings, rounds=rounds, seed=seed)
    rows = []
    for player, value in in_order.items():
        values = spread.get(player, np.array([value]))
        rows.append(Rating(player, float(np.median(values)), float(np.percentile(values, 2.5)),
                           float(np.percentile(values, 97.5)), games[player], value))  # fmt: skip
    return sorted(rows, key=lambda row: -row.rating)


def bradley_terry_leaderboard(matches: Sequence[Match], *, rounds: int = 200, seed: int = 0) -> list[Rating]:
    """Bradley-Terry MLE on the Elo scale with a 95% bootstrap interval, best first."""

    def rate(picked):
        return bt_to_elo_scale(bradley_terry(picked, iterations=2000, tolerance=1e-7))

    point = bt_to_elo_scale(bradley_terry(matches))
    spread = _bootstrap(matches, rate, rounds=rounds, seed=seed) if matches else {}
    games = _games_per_player(matches)
    rows = []
    for player, value in point.items():
        values = spread.get(player, np.array([value]))
        rows.append(
            Rating(
                player,
                value,
                float(np.percentile(values, 2.5)),
                float(np.percentile(values, 97.5)),
                games[player],
            )
        )
    return sorted(rows, key=lambda row: -row.rating)


# ---------------------------------------------------------------- one group's diversity, for dashboards and the benchmark


def diversity_summary(
    texts: Sequence[str],
    vectors: np.ndarray | None,
    *,
    self_bleu_sample: int = 200,
    vendi_sample: int = 1000,
    near_duplicate_sample: int | None = None,
    near_duplicate_threshold: float = 0.95,
    seed: int = 0,
) -> dict:
    """Lexical diversity over all texts; Self-BLEU and Vendi on random samples (both are quadratic: Self-BLEU
    in references, Vendi in its kernel) whose sizes are reported; mean pairwise cosine distance over all
    vectors (O(n·d)); near-duplicate rate over all vectors, or estimated on `near_duplicate_sample` of them
    against all."""
    rng = np.random.default_rng(seed)
    token_lists = [tokenize(text) for text in texts]
    n = len(token_lists)
    bleu_index: Sequence[int] | np.ndarray = (
        rng.choice(n, size=min(n, self_bleu_sample), replace=False) if n else []
    )
    (distinct_1, top_1), (distinct_2, top_2), (distinct_3, top_3) = (
        ngram_stats(token_lists, k, 8) for k in (1, 2, 3)
    )
    summary = {
        "n": n,
        "vocabulary": vocabulary_size(token_lists),
        "distinct_1": distinct_1,
        "distinct_2": distinct_2,
        "distinct_3": distinct_3,
        "top_unigrams": top_1,
        "top_bigrams": top_2,
        "top_trigrams": top_3,
        "self_bleu": self_bleu([token_lists[i] for i in bleu_index]),
        "self_bleu_sample": len(bleu_index),
        "cosine_distance": None,
        "vendi": None,
        "vendi_sample": 0,
        "near_duplicate_rate": None,
        "near_duplicate_sample": 0,
        "embedded": 0,
    }
    if vectors is not None and len(vectors):
        vendi_index = rng.choice(len(vectors), size=min(len(vectors), vendi_sample), replace=False)
        summary.update(
            cosine_distance=mean_pairwise_cosine_distance(vectors),
            vendi=vendi_score(vectors[vendi_index]),
            vendi_sample=len(vendi_index),
            near_duplicate_rate=near_duplicate_rate(
                vectors, threshold=near_duplicate_threshold, sample=near_duplicate_sample, seed=seed
            ),
            near_duplicate_sample=min(len(vectors), near_duplicate_sample or len(vectors)),
            embedded=len(vectors),
        )
    return summary
