"""The offline generator (no network): a word-level Markov chain per label fit on the project's own texts.

Used only when a config has no LLM endpoint, so the demo runs end to end; every sample it makes is marked
"offline" in its provenance and on every page that shows it. Order 2 once there is enough text, else
order 1 (tiny seed sets would otherwise be copied verbatim).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

TOKEN = re.compile(r"\w[\w'-]*|[^\w\s]")
START, END = "<s>", "</s>"
GENERATOR_NAME = "offline-markov"


class MarkovTextModel:
    def __init__(self, texts: Iterable[str], *, order: int | None = None) -> None:
        sentences = [TOKEN.findall(text) for text in texts if text and text.strip()]
        words = sum(len(s) for s in sentences)
        self.order = order or (2 if words >= 2000 else 1)
        self.transitions: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for tokens in sentences:
            padded = [START] * self.order + tokens + [END]
            for i in range(len(padded) - self.order):
                self.transitions[tuple(padded[i : i + self.order])].append(padded[i + self.order])

    @property
    def is_empty(self) -> bool:
        return not self.transitions

    def generate(self, rng: random.Random, *, max_words: int = 60, extra_words: Sequence[str] = ()) -> str:
        if self.is_empty:
            return ""
        state = tuple([START] * self.order)
        out: list[str] = []
        while len(out) < max_words:
            choices = self.transitions.get(state)
            if not choices:
                break
            token = rng.choice(choices)
            if token == END:
                break
            out.append(token)
            state = (*state[1:], token)
        if extra_words:
            out += ["(", *extra_words, ")"]
        return detokenise(out)


def detokenise(tokens: Sequence[str]) -> str:
    text = " ".join(tokens)
    text = re.sub(r"\s+([.,!?;:)\]])", r"\1", text)
    return re.sub(r"([(\[])\s+", r"\1", text).strip()


class OfflineGenerator:
    """One chain per label plus one over all texts (for unlabelled conditions)."""

    def __init__(
        self, texts_by_label: Mapping[str, Sequence[str]], *, fallback_texts: Sequence[str] = ()
    ) -> None:
        self.by_label = {label: MarkovTextModel(texts) for label, texts in texts_by_label.items() if texts}
        all_texts = [t for texts in texts_by_label.values() for t in texts] + list(fallback_texts)
        self.any_label = MarkovTextModel(all_texts)

    def text(self, rng: random.Random, label: str = "", extra_words: Sequence[str] = ()) -> str:
        model = self.by_label.get(label) or self.any_label
        text = model.generate(rng, extra_words=extra_words)
        return text or "(offline generator: no seed texts to learn from)"

    def label_for(self, rng: random.Random, wanted: str, labels: Sequence[str]) -> str:
        if wanted:
            return wanted
        known = [label for label in labels if label in self.by_label] or list(labels)
        return rng.choice(known) if known else ""
