from django.contrib import admin

from generation.forms import EndpointForm
from generation.models import ConditionValueProposal, GenerationConfig, GenerationRun, LLMCall, LLMEndpoint


@admin.register(LLMEndpoint)
class LLMEndpointAdmin(admin.ModelAdmin):
    """Global endpoints (no project) are managed here, with the leads' form: the same key-variable and address
    rules, a write-only key (never shown), and a stored key dropped when the base URL or model changes."""

    form = EndpointForm
    fields = ["project", *EndpointForm.Meta.fields, "api_key", "clear_api_key"]
    list_display = ["name", "project", "base_url", "model", "max_concurrency", "rpm", "tpm"]
    list_filter = ["project"]


@admin.register(GenerationConfig)
class GenerationConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "project", "kind", "endpoint", "target_count"]
    list_filter = ["project", "kind"]


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "config", "status", "done", "failed", "cached", "cost"]
    list_filter = ["status"]


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    list_display = ["key", "model", "prompt_tokens", "completion_tokens", "cost", "created_at"]
    readonly_fields = ["key", "request", "response"]


admin.site.register(ConditionValueProposal)
