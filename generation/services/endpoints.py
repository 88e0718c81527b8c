"""LLM endpoints: the global endpoint mirrored from LLM_BASE_URL, and the endpoints a project may use."""

from __future__ import annotations

from django.conf import settings

from generation.models import LLMEndpoint
from synthstudio.models import Project

ENVIRONMENT_ENDPOINT_NAME = "environment (LLM_BASE_URL)"


def endpoint_sync_from_environment() -> LLMEndpoint | None:
    """The endpoint named by LLM_BASE_URL/LLM_MODEL (key from LLM_API_KEY), as a global endpoint every
    project can choose; kept in step with the environment. None when LLM_BASE_URL is unset."""
    if not settings.LLM_BASE_URL:
        return None
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        project=None,
        name=ENVIRONMENT_ENDPOINT_NAME,
        defaults={
            "base_url": settings.LLM_BASE_URL,
            "model": settings.LLM_MODEL or "default",
            "api_key_env": "LLM_API_KEY",
            "from_environment": True,  # the operator's: the only endpoint that may use LLM_API_KEY
        },
    )
    return endpoint


def endpoint_default_for(*, project: Project) -> LLMEndpoint | None:
    """The endpoint every LLM form and run starts from (generation, labelling, judges): the project's own
    newest, else the environment's (LLM_BASE_URL), else another global one; None (offline) only when the
    project can use no endpoint at all."""
    environment = endpoint_sync_from_environment()
    own = LLMEndpoint.objects.filter(project=project).order_by("-created_at", "-pk").first()
    if own is not None or environment is not None:
        return own or environment
    return LLMEndpoint.objects.filter(project__isnull=True).order_by("-created_at", "-pk").first()


def endpoint_choices(project: Project):
    return LLMEndpoint.objects.usable_in(project)
