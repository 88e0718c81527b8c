"""Admin for labelling and routing rows (read mostly: the app's pages are where leads work)."""

from django.contrib import admin

from annotation.models import LabellingRun, RoutingPolicy, SampleSignals, SignalsRun


@admin.register(LabellingRun)
class LabellingRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "method",
        "model_name",
        "status",
        "done",
        "invalid",
        "failed",
        "created_at",
    ]
    list_filter = ["status", "method"]
    raw_id_fields = ["project", "codebook", "endpoint", "created_by"]


@admin.register(SignalsRun)
class SignalsRunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "status", "done", "total", "created_at"]
    raw_id_fields = ["project", "created_by"]


@admin.register(SampleSignals)
class SampleSignalsAdmin(admin.ModelAdmin):
    list_display = ["sample", "llm_label", "entropy", "student_probability", "knn_agreement"]
    raw_id_fields = ["sample", "duplicate_of"]


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "strategy",
        "budget_kind",
        "budget_count",
        "budget_share",
        "batch_size",
        "is_active",
    ]
    raw_id_fields = ["project", "updated_by"]
