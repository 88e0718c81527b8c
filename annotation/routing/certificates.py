"""Label certificates as data: the fingerprint of what a certificate speaks for, the latest one, whether it is
stale, and its plain-words statement. Written by annotation.routing.quality_target; read by the routing page,
snapshots, dataset cards and exports (one function each, so every place says the same thing).

A certificate speaks for the project's samples and their final labels at the time it was written:
`final_labels_digest` hashes (sample id, text, final label) of every sample in id order — the text a snapshot
writes, i.e. an accepted text correction where there is one — so adding, removing or editing a sample,
accepting a correction, or any change of a final label gives another digest and the certificate is stale.
"""

from __future__ import annotations

import hashlib

from annotation.models import CorrectionStatus, LabelCertificate, SampleTextVersion
from synthstudio.models import Project, Sample


def final_labels_digest(*, project: Project) -> str:
    """SHA-256 over (id, text, final label) of the project's samples, in id order; the text is the accepted
    correction where a lead accepted one."""
    corrected = dict(
        SampleTextVersion.objects.filter(
            sample__project=project, status=CorrectionStatus.ACCEPTED
        ).values_list("sample_id", "text")
    )
    digest = hashlib.sha256()
    rows = Sample.objects.filter(project=project).order_by("id").values_list("id", "text", "final_label")
    for sample_id, text, final_label in rows.iterator(chunk_size=5000):
        text = corrected.get(sample_id, text)
        digest.update(f"{sample_id}\x1f{final_label}\x1f".encode())
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def certificate_latest(*, project: Project) -> LabelCertificate | None:
    return LabelCertificate.objects.filter(project=project).order_by("-created_at", "-id").first()


def certificate_is_stale(certificate: LabelCertificate, *, digest: str | None = None) -> bool:
    """True when the project's samples or final labels changed since the certificate was written."""
    current = digest if digest is not None else final_labels_digest(project=certificate.project)
    return current != certificate.labels_digest


def certificate_statement(data: dict) -> str:
    """The certificate in plain words, from `certificate_as_dict`'s output."""
    statement = (
        f"At most {data['epsilon']:.1%} of the final labels are wrong, with probability at least "
        f"{data['confidence']:.0%}; estimated error {data['estimated_error']:.1%} "
        f"[{data['error_ci_low']:.1%}, {data['error_ci_high']:.1%}]; humans labelled {data['human_share']:.1%} "
        f"of {data['item_count']} items. Assumes the reviewers' answers are right."
    )
    held = data.get("snapshot_item_count")
    if held is not None and held != data["item_count"]:
        statement += f" Certified over the project's {data['item_count']} items; this snapshot holds " + (
            f"{held} items." if data.get("stale") else f"{held} of them."
        )
    if data.get("is_offline"):
        statement += " LLM labels came from the offline stand-in, not a real model."
    if data.get("stale"):
        statement += " STALE: samples or labels changed after it was written; it no longer holds."
    return statement


def certificate_as_dict(
    certificate: LabelCertificate, *, stale: bool, snapshot_item_count: int | None = None
) -> dict:
    """What snapshots store and dataset cards and export metadata write (JSON-safe). A snapshot passes how many
    items it holds: the bound is over all of the project's final labels, and the statement says so when a
    filtered snapshot holds fewer, instead of claiming the bound for the subset."""
    data = {
        "kind": "pac_labels",
        "created_at": certificate.created_at.isoformat(),
        "epsilon": certificate.epsilon,
        "confidence": certificate.confidence,
        "alpha": round(certificate.alpha, 10),
        "score": certificate.score,
        "threshold": certificate.threshold,
        "upper_bound": certificate.upper_bound,
        "estimated_error": certificate.estimated_error,
        "error_ci_low": certificate.error_ci_low,
        "error_ci_high": certificate.error_ci_high,
        "item_count": certificate.item_count,
        "human_count": certificate.human_count,
        "human_share": certificate.human_share,
        "calibration_count": certificate.calibration_count,
        "reviewer_agreement": certificate.reviewer_agreement,
        "is_offline": certificate.is_offline,
        "stale": stale,
        "assumptions": [
            "Reviewers' answers are the truth (see reviewer_agreement for how often they agree).",
            "The calibration items were drawn with the recorded probabilities.",
        ],
    }
    if snapshot_item_count is not None:
        data["snapshot_item_count"] = snapshot_item_count
    data["statement"] = certificate_statement(data)
    return data
