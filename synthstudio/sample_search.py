"""The samples page's search and filters, shared by the list (synthstudio.views.sample_list) and the bulk actions
that run on "all samples matching the filter" (annotation.samples).

A search is a small frozen value read from the query string by SampleSearchForm, so a page link, a bulk
action's hidden fields and a background job all carry the same filter. `samples_matching` turns it into one
QuerySet: every filter is a WHERE clause on the project's samples (indexed columns where the filter is
selective: origin, final label, final source), or an IN subquery on a small index (the current LLM labels and
the reviewers' flags have partial indexes; routing reasons are read by sample). Text search is a
case-insensitive substring match (LIKE / ILIKE): a scan of the project's rows, measured with the other filters
by `manage.py bench_sample_search` (README: about 50 ms for a page at 100,000 samples on SQLite).

The routing filters read annotation's review tasks through the ORM relation `review_tasks` by name: this app
sits below annotation and does not import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from django.db.models import Exists, OuterRef, Q, QuerySet

from synthstudio.models import (
    HUMAN_VERIFIED_SOURCES,
    HumanAnnotation,
    LabelMethod,
    LLMAnnotation,
    Project,
    Sample,
)

NO_LABEL = "(none)"  # the label filters' value for "no label"
YES, NO = "yes", "no"


@dataclass(frozen=True)
class SampleSearch:
    """Every field empty means "any". Field names are the query-string parameters."""

    q: str = ""  # text contains (case-insensitive)
    label: str = ""  # final label, or NO_LABEL
    llm_label: str = ""  # the current LLM label, or NO_LABEL
    origin: str = ""  # imported | generated
    reviewed: str = ""  # yes | no: the final label comes from a human (answer or adjudication)
    flagged: str = ""  # yes | no: a reviewer flagged it
    routed: str = ""  # yes | no: it was sent to the review queue
    reason: str = ""  # the routing reason contains (case-insensitive)
    excluded: str = ""  # yes | no: a lead excluded it from snapshots

    @classmethod
    def from_dict(cls, data: dict) -> SampleSearch:
        known = {f.name for f in fields(cls)}
        return cls(**{key: str(value) for key, value in (data or {}).items() if key in known and value})

    def as_dict(self) -> dict[str, str]:
        """Only the fields that filter (what a job stores and a link carries)."""
        return {key: value for key, value in asdict(self).items() if value}

    @property
    def is_filtered(self) -> bool:
        return bool(self.as_dict())


def samples_matching(*, project: Project, search: SampleSearch) -> QuerySet[Sample]:
    """The project's samples that pass every filter of `search`, in id order."""
    samples = Sample.objects.filter(project=project)
    if search.q:
        samples = samples.filter(text__icontains=search.q)
    if search.label:
        samples = samples.filter(final_label="" if search.label == NO_LABEL else search.label)
    if search.llm_label:
        # IN over the current labels (a partial index) rather than EXISTS per sample: one index range scan
        current = LLMAnnotation.objects.filter(is_current=True, valid=True)
        if search.llm_label == NO_LABEL:
            samples = samples.exclude(pk__in=current.values("sample_id"))
        else:
            samples = samples.filter(pk__in=current.filter(label=search.llm_label).values("sample_id"))
    if search.origin:
        samples = samples.filter(origin=search.origin)
    if search.reviewed:
        human = Q(final_source__in=HUMAN_VERIFIED_SOURCES)
        samples = samples.filter(human) if search.reviewed == YES else samples.exclude(human)
    if search.flagged:
        flagged = HumanAnnotation.objects.exclude(flag="").values("sample_id")  # a partial index
        samples = samples.filter(pk__in=flagged) if search.flagged == YES else samples.exclude(pk__in=flagged)
    if search.routed:
        routed = Sample.objects.filter(project=project, review_tasks__isnull=False).values("pk")
        samples = samples.filter(pk__in=routed) if search.routed == YES else samples.exclude(pk__in=routed)
    if search.reason:
        samples = samples.filter(
            pk__in=Sample.objects.filter(
                project=project, review_tasks__reason__icontains=search.reason
            ).values("pk")
        )
    if search.excluded:
        samples = samples.filter(excluded_from_snapshots=search.excluded == YES)
    return samples.order_by("id")


def samples_for_list(*, project: Project, search: SampleSearch) -> QuerySet[Sample]:
    """`samples_matching` with what each row of the list shows: whether its LLM label is the offline
    labeller's and whether a reviewer flagged it (subqueries evaluated for the page's rows only)."""
    offline_llm_label = LLMAnnotation.objects.filter(
        sample=OuterRef("pk"), is_current=True, method=LabelMethod.OFFLINE
    )
    return samples_matching(project=project, search=search).annotate(
        llm_label_offline=Exists(offline_llm_label),
        flagged=Exists(HumanAnnotation.objects.filter(sample=OuterRef("pk")).exclude(flag="")),
    )
