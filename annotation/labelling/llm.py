"""LLM labelling through the shared client (generation.llm): requests per method, answers → LabelReadings.

One chunk of samples at a time through `complete_many_sync` (concurrency, retries, rate limits and the call
cache are the client's: a resumed run re-pays nothing). Answers are parsed by the pure core
(annotation.labelling). A model answer naming no label becomes an invalid reading (recorded); a transport
failure after the client's retries (HTTP error, timeout, connection) records nothing for that sample and is
counted, and a chunk where every call failed that way stops the run with the error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotation.labelling.distributions import (
    CodebookSpec,
    Demo,
    LabelReading,
    build_label_messages,
    distribution_from_logprobs,
    distribution_from_votes,
    parse_verbalised,
)
from generation.llm.client import CompletionResult, ErrorKind, LLMRequest, complete_many_sync
from synthstudio.models import LabelMethod, Sample

TRANSPORT_ERRORS = {ErrorKind.HTTP_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION}
TOP_LOGPROBS = 20  # the OpenAI maximum
VERBALISED_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "confidence": {"type": "number"},
        "rationale": {"type": "string"},
    },
    "required": ["label", "confidence"],
}


@dataclass
class ChunkResult:
    samples: list[Sample]  # the samples that got a reading (valid or not)
    readings: list[LabelReading]
    raw_outputs: list[str]
    cached: int
    transport_failures: int
    first_error: str = ""


def label_requests(
    *,
    method: str,
    spec: CodebookSpec,
    sample: Sample,
    demos: Sequence[Demo],
    samples_per_item: int,
    temperature: float,
) -> list[LLMRequest]:
    """The calls one sample needs under `method`; keys are (sample id, call index)."""
    if method == LabelMethod.LOGPROBS:
        messages = build_label_messages(spec, sample.text, demos=demos, method=method)
        params = {"temperature": 0, "max_tokens": 1, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return [LLMRequest(key=(sample.pk, 0), messages=messages, params=params)]
    if method == LabelMethod.SELF_CONSISTENCY:
        messages = build_label_messages(spec, sample.text, demos=demos, method=method)
        params = {"temperature": temperature, "max_tokens": 5, "n": samples_per_item}
        return [LLMRequest(key=(sample.pk, 0), messages=messages, params=params)]
    if method == LabelMethod.PROMPT_VARIANTS:
        return [
            LLMRequest(
                key=(sample.pk, variant),
                messages=build_label_messages(spec, sample.text, demos=demos, method=method, variant=variant),
                params={"temperature": 0, "max_tokens": 5},
            )
            for variant in range(samples_per_item)
        ]
    if method == LabelMethod.VERBALISED:
        messages = build_label_messages(spec, sample.text, demos=demos, method=method)
        params = {"temperature": 0, "max_tokens": 200}
        return [
            LLMRequest(key=(sample.pk, 0), messages=messages, params=params, json_schema=VERBALISED_SCHEMA)
        ]
    raise ValueError(f"{method!r} is not an LLM labelling method")


def reading_from_results(
    method: str, spec: CodebookSpec, results: Sequence[CompletionResult]
) -> LabelReading:
    """Combine one sample's answers into a reading (pure given the results)."""
    contents = [content or "" for result in results for content in result.choices]
    if method == LabelMethod.LOGPROBS:
        first = results[0]
        tokens = (first.logprobs[0] if first.logprobs else None) or []
        if tokens:
            top = [(alt["token"], alt["logprob"]) for alt in tokens[0].get("top_logprobs") or []]
            if not top:
                top = [(tokens[0]["token"], tokens[0]["logprob"])]
            return distribution_from_logprobs(top, spec)
        # the endpoint sent no logprobs: the answer alone, one vote, and the reading says so
        reading = distribution_from_votes(contents[:1], spec)
        reading.details["note"] = "no logprobs returned: one answer, no distribution"
        return reading
    if method == LabelMethod.VERBALISED:
        return parse_verbalised(contents[0] if contents else "", spec)
    return distribution_from_votes(contents, spec)


def raw_output_of(results: Sequence[CompletionResult]) -> str:
    payload = []
    for result in results:
        entry: dict = {"choices": result.choices}
        if result.error_kind:
            entry["error"] = f"{result.error_kind}: {result.error}"[:300]
        if any(result.logprobs):
            first = (result.logprobs[0] or [{}])[0]
            entry["top_logprobs"] = [
                [alt.get("token"), alt.get("logprob")] for alt in first.get("top_logprobs", [])
            ]
        payload.append(entry)
    return json.dumps(payload, ensure_ascii=False)[:20000]


def llm_label_chunk(
    *,
    endpoint,
    method: str,
    spec: CodebookSpec,
    samples: Sequence[Sample],
    demos: Sequence[Sequence[Demo]],
    samples_per_item: int,
    temperature: float,
    should_stop: Callable[[], bool] | None = None,
) -> ChunkResult:
    requests = [
        request
        for sample, sample_demos in zip(samples, demos, strict=True)
        for request in label_requests(
            method=method,
            spec=spec,
            sample=sample,
            demos=sample_demos,
            samples_per_item=samples_per_item,
            temperature=temperature,
        )
    ]
    expected = defaultdict(int)
    for request in requests:
        expected[request.key[0]] += 1
    arrived: dict[int, list[tuple[int, CompletionResult]]] = defaultdict(list)

    def on_result(request: LLMRequest, result: CompletionResult) -> None:
        arrived[request.key[0]].append((request.key[1], result))

    summary = complete_many_sync(endpoint, requests, on_result, should_stop=should_stop)
    outcome = ChunkResult([], [], [], summary.cached, 0)
    for sample in samples:
        results = [result for _, result in sorted(arrived.get(sample.pk, []), key=lambda pair: pair[0])]
        if len(results) < expected[sample.pk]:
            continue  # stopped before all its calls came back: labelled on resume
        usable = [result for result in results if result.error_kind not in TRANSPORT_ERRORS]
        if not usable:
            outcome.transport_failures += 1
            outcome.first_error = outcome.first_error or f"{results[0].error_kind}: {results[0].error}"
            continue
        reading = reading_from_results(method, spec, usable)
        outcome.samples.append(sample)
        outcome.readings.append(reading)
        outcome.raw_outputs.append(raw_output_of(results))
    return outcome
