"""User-supplied regular expressions run on RE2: catastrophic patterns answer at once, unsupported syntax and
oversized patterns get a form error, and settings saved before RE2 neither break the curation page nor
build a snapshot that ignores one of its rules."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.models import CurationSettings, Snapshot, SnapshotItem, SnapshotJob
from evaluation.tasks import snapshot_job_task
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation, Sample
from synthstudio.user_regex import MAX_PATTERN_CHARS, UserPatternError, compile_user_pattern

# (pattern, a text on which a backtracking engine explores ~2**40 paths before failing)
CATASTROPHIC = [("(a+)+$", "a" * 42 + "b"), ("(x+x+)+y", "x" * 42)]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the test after `seconds` (SIGALRM; `re` checks for signals while it backtracks), so code that
    hangs fails this test instead of hanging the suite. The assertions use a far tighter bound."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def labelled_sample(project, text: str, name: str = "positive") -> Sample:
    sample = Sample.objects.create(project=project, text=text)
    LLMAnnotation.objects.create(
        sample=sample, label=name, distribution={name: 0.9}, confidence=0.9, method=LabelMethod.IMPORTED
    )
    final_label_refresh(sample=sample)
    return sample


@pytest.fixture
def pathological(project):
    """Texts that make both CATASTROPHIC patterns backtrack, plus two that end in 'a'."""
    texts = ["a" * 42 + "b", "x" * 42, "a" * 45, "An epic saga"]
    return [labelled_sample(project, text) for text in texts]


# -- the pure module ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "text"), CATASTROPHIC)
def test_a_catastrophic_pattern_answers_at_once(pattern, text):
    compiled = compile_user_pattern(pattern)
    started = time.perf_counter()
    with deadline(10):
        found = compiled.search(text * 1000)
    assert not found and time.perf_counter() - started < 1.0
    assert compiled.search("a" * 40) is (pattern == "(a+)+$")


@pytest.mark.parametrize("pattern", [r"(\w+) \1", r"(?P<word>\w+) (?P=word)"])
def test_it_refuses_a_backreference_with_a_sentence_naming_it(pattern):
    with pytest.raises(UserPatternError, match="Backreferences .* not supported"):
        compile_user_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"foo(?=bar)", r"foo(?!bar)", r"(?<=a)b", r"(?<!a)b"])
def test_it_refuses_a_lookaround_with_a_sentence_naming_it(pattern):
    with pytest.raises(UserPatternError, match="Lookahead and lookbehind"):
        compile_user_pattern(pattern)


def test_it_refuses_a_pattern_over_the_length_cap_naming_the_limit():
    with pytest.raises(UserPatternError, match=f"10000 characters; the limit is {MAX_PATTERN_CHARS}"):
        compile_user_pattern("a" * 10_000)
    assert compile_user_pattern("a" * MAX_PATTERN_CHARS).search("a" * MAX_PATTERN_CHARS)


def test_it_refuses_a_pattern_too_large_to_compile_within_the_memory_budget():
    with pytest.raises(UserPatternError, match="too large once compiled"):
        compile_user_pattern(r"[\p{L}\p{N}]{1000}")


def test_an_invalid_pattern_keeps_the_engines_reason():
    with pytest.raises(UserPatternError, match=r"Not a valid regular expression: missing \)"):
        compile_user_pattern("(")


# -- the curation pages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "text"), CATASTROPHIC)
def test_the_counts_request_with_a_catastrophic_pattern_answers_within_a_second(
    lead_client, project, pathological, pattern, text
):
    url = reverse("evaluation:curation_counts", args=[project.id])
    started = time.perf_counter()
    with deadline(10):
        response = lead_client.get(url, {"must_match": pattern}, HTTP_HX_REQUEST="true")
    elapsed = time.perf_counter() - started
    html = response.content.decode()
    assert response.status_code == 200 and elapsed < 1.0, elapsed
    kept = 2 if pattern == "(a+)+$" else 0  # the two texts ending in 'a'; nothing ends in x…y
    assert f"<strong>{kept}</strong> of 4 samples would be kept" in html
    assert not CurationSettings.objects.exists()  # a preview stores nothing
    assert lead_client.get(reverse("evaluation:curation", args=[project.id])).status_code == 200


def test_a_backreference_gets_a_form_error_and_saves_nothing(lead_client, project, pathological):
    response = lead_client.post(
        reverse("evaluation:snapshot_new", args=[project.id]), {"must_match": r"(\w+) \1", "licence": "mit"}
    )
    assert response.status_code == 400
    assert "Backreferences (\\1, (?P=name)) are not supported" in response.content.decode()
    assert not CurationSettings.objects.exists() and not SnapshotJob.objects.exists()


def test_the_live_counts_fragment_names_the_refused_construct(lead_client, project, pathological):
    response = lead_client.get(
        reverse("evaluation:curation_counts", args=[project.id]),
        {"must_not_match": "(?<!a)b"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "Fix the highlighted settings" in html
    assert "Text must not match (regex): Lookahead and lookbehind" in html


def test_a_10k_character_pattern_is_refused_naming_the_limit(lead_client, project, pathological):
    response = lead_client.post(
        reverse("evaluation:snapshot_new", args=[project.id]),
        {"must_not_match": "a" * 10_000, "licence": "mit"},
    )
    assert response.status_code == 400
    assert f"The pattern has 10000 characters; the limit is {MAX_PATTERN_CHARS}." in response.content.decode()
    assert not SnapshotJob.objects.exists()


def test_a_saved_pattern_re2_refuses_is_shown_as_not_applied_instead_of_a_500(
    lead_client, project, pathological
):
    CurationSettings.objects.create(project=project, filters=FilterSettings(must_match=r"(\w)\1").as_dict())
    with deadline(10):
        response = lead_client.get(reverse("evaluation:curation", args=[project.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "The saved rule “Text must match” is not applied: Backreferences" in html
    assert "<strong>4</strong> of 4 samples would be kept" in html  # counted without the rule
    assert 'value="(\\w)\\1"' in html  # the form still shows it, to be fixed


def test_a_saved_catastrophic_pattern_applies_and_the_curation_page_answers_within_a_second(
    lead_client, project, pathological
):
    CurationSettings.objects.create(project=project, filters=FilterSettings(must_match="(a+)+$").as_dict())
    started = time.perf_counter()
    with deadline(10):
        response = lead_client.get(reverse("evaluation:curation", args=[project.id]))
    assert response.status_code == 200 and time.perf_counter() - started < 1.0
    assert "<strong>2</strong> of 4 samples would be kept" in response.content.decode()


# -- snapshots ---------------------------------------------------------------------------------------------------


def test_a_snapshot_with_a_catastrophic_pattern_builds_promptly_and_applies_the_rule(
    lead_client, project, pathological, django_capture_on_commit_callbacks
):
    started = time.perf_counter()
    with deadline(10), django_capture_on_commit_callbacks(execute=True):  # eager Celery runs the job here
        response = lead_client.post(
            reverse("evaluation:snapshot_new", args=[project.id]),
            {"must_match": "(a+)+$", "must_not_match": "(x+x+)+y", "licence": "mit"},
        )
    elapsed = time.perf_counter() - started
    job = SnapshotJob.objects.get(project=project)
    assert response.status_code == 302 and job.status == JobStatus.SUCCEEDED, job.error
    assert elapsed < 2.0, elapsed
    texts = set(SnapshotItem.objects.filter(snapshot=job.snapshot).values_list("text", flat=True))
    assert texts == {"a" * 45, "An epic saga"}
    assert job.snapshot.removed_counts["format"] == 2


def test_a_queued_snapshot_job_with_a_pattern_re2_refuses_fails_saying_which_rule(
    project, lead, pathological
):
    settings = FilterSettings(must_not_match="(?<=a)b").as_dict()
    job = SnapshotJob.objects.create(project=project, created_by=lead, filter_settings=settings)
    snapshot_job_task(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("No snapshot was built. The rule “Text must not match” cannot run: Lookahead")
    assert job.snapshot is None and not Snapshot.objects.exists()  # no version number taken
