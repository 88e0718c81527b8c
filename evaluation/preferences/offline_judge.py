"""The offline judge: a transparent heuristic that stands in for LLM-as-judge when no LLM endpoint is
configured. No Django, no network, deterministic. It is not an LLM, and every page showing its runs or
verdicts marks them "offline".

What it measures, honestly:

- Ratings (A–D) measure topical fit of a sample to the label it carries: the cosine similarity of the
  sample's sentence embedding to the nearest of that label's codebook texts (name + description, and each
  example), with the model the offline labeller uses. Similarity at or above 0.40 is A, 0.25 B, 0.12 C,
  below that D (thresholds picked on the demo codebook with all-MiniLM-L6-v2: the seed messages score
  0.14–0.98 against their own label, off-topic sentences below 0.10). A sample clearly closer (by more
  than 0.05) to another label drops one grade; an unlabelled sample is scored against its nearest label.
  Plain text checks come first: an empty text or one under three words is D, and a text whose words are
  mostly repeats is at most C. It does not check correctness, fluency, style or usefulness.
- Pairs measure relevance: each response's similarity to the pair's prompt (an empty or very short
  response scores -1, a repetitive one loses 0.2); the higher score wins, and scores within 0.03 of each
  other are a tie. A response's score does not depend on where it is shown, so this judge has no position
  bias by construction: its position-bias rate is 0 and says nothing about any LLM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotation.labelling.offline import zero_shot_scores
from synthstudio.vectors import normalise_rows

OFFLINE_JUDGE_NAME = "offline heuristic judge"
GRADES = "ABCD"
GRADE_FLOORS = (("A", 0.40), ("B", 0.25), ("C", 0.12))  # at or above the floor; below all of them: D
OTHER_LABEL_MARGIN = 0.05
MIN_WORDS = 3
REPETITIVE_DISTINCT_SHARE = 0.5  # fewer distinct words than this share of all words (from 4 words on)
REPETITION_PENALTY = 0.2
PAIR_TIE_BAND = 0.03

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class OfflineRating:
    rating: str
    reason: str
    similarity: float | None  # to the label it was scored against; None when a text check decided
    scored_label: str


def text_problem(text: str) -> str:
    """Why a text fails the plain checks ("" when it passes)."""
    words = _WORD.findall(text or "")
    if not words:
        return "empty text"
    if len(words) < MIN_WORDS:
        return f"very short ({len(words)} word{'s' if len(words) != 1 else ''})"
    return ""


def is_repetitive(text: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text or "")]
    return len(words) >= 4 and len(set(words)) < REPETITIVE_DISTINCT_SHARE * len(words)


def grade_for(similarity: float) -> str:
    for grade, floor in GRADE_FLOORS:
        if similarity >= floor:
            return grade
    return "D"


def _lower(grade: str, *, at_least: str = "D") -> str:
    return GRADES[min(GRADES.index(grade) + 1, GRADES.index(at_least))]


def rate(
    text: str, *, label: str, similarity: float, other_label: str = "", other_similarity: float | None = None
) -> OfflineRating:
    """One sample's rating from its similarity to its label (and to the closest other label, if any)."""
    problem = text_problem(text)
    if problem:
        return OfflineRating("D", f"offline: {problem}", None, label)
    grade = grade_for(similarity)
    reasons = [f"similarity {similarity:.2f} to the codebook texts of {label!r}"]
    if other_similarity is not None and other_similarity > similarity + OTHER_LABEL_MARGIN:
        grade = _lower(grade)
        reasons.append(f"closer to {other_label!r} ({other_similarity:.2f}): one grade lower")
    if is_repetitive(text):
        grade = max(grade, "C")
        reasons.append("mostly repeated words: at most C")
    return OfflineRating(grade, "offline: " + "; ".join(reasons), round(similarity, 4), label)


def offline_ratings(
    texts: Sequence[str],
    labels: Sequence[str],
    text_vectors: np.ndarray,
    reference_vectors: np.ndarray,
    owners: Sequence[int],
    label_names: Sequence[str],
) -> list[OfflineRating]:
    """Ratings of texts carrying labels (a label may be "" or unknown: then the nearest label is used).
    reference_vectors/owners: the codebook texts' embeddings and, per text, the index of its label."""
    if not len(texts):
        return []
    scores = zero_shot_scores(text_vectors, reference_vectors, owners, len(label_names))
    index_of = {name: i for i, name in enumerate(label_names)}
    ratings = []
    for text, label, row in zip(texts, labels, scores, strict=True):
        own = index_of.get(label)
        if own is None:
            nearest = int(np.argmax(row))
            ratings.append(rate(text, label=label_names[nearest], similarity=float(row[nearest])))
            continue
        others = [i for i in range(len(label_names)) if i != own]
        closest = max(others, key=lambda i: row[i]) if others else None
        ratings.append(
            rate(
                text, label=label, similarity=float(row[own]),
                other_label=label_names[closest] if closest is not None else "",
                other_similarity=float(row[closest]) if closest is not None else None,
            )
        )  # fmt: skip
    return ratings


def response_score(text: str, similarity_to_prompt: float) -> float:
    if text_problem(text):
        return -1.0
    return similarity_to_prompt - (REPETITION_PENALTY if is_repetitive(text) else 0.0)


def pair_winner(first_score: float, second_score: float) -> str:
    """The winner by position, as the LLM judge answers: 1, 2 or tie (scores within the tie band)."""
    if abs(first_score - second_score) <= PAIR_TIE_BAND:
        return "tie"
    return "1" if first_score > second_score else "2"


def pair_scores(
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    prompt_vectors: np.ndarray,
    a_vectors: np.ndarray,
    b_vectors: np.ndarray,
) -> list[tuple[float, float]]:
    """Per pair, (score of A, score of B): cosine similarity to the prompt, with the text checks applied."""
    if not len(prompts):
        return []
    prompts_n, a_n, b_n = (
        normalise_rows(np.atleast_2d(v)).astype(np.float64) for v in (prompt_vectors, a_vectors, b_vectors)
    )
    similarity_a = (prompts_n * a_n).sum(axis=1)
    similarity_b = (prompts_n * b_n).sum(axis=1)
    return [
        (round(response_score(a, float(sa)), 4), round(response_score(b, float(sb)), 4))
        for a, b, sa, sb in zip(responses_a, responses_b, similarity_a, similarity_b, strict=True)
    ]
