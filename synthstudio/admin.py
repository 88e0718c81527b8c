"""Django admin for staff: users are created here; projects, codebooks and samples can be inspected."""

from __future__ import annotations

from django.contrib import admin

from synthstudio.models import Codebook, ImportJob, Label, Membership, Project, Sample, WorkerHeartbeat


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0


@admin.register(Codebook)
class CodebookAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "created_by", "created_at"]
    list_filter = ["project"]
    inlines = [LabelInline]


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "short_text", "origin", "final_label", "final_source"]
    list_filter = ["origin", "final_source", "project"]
    search_fields = ["text"]
    list_select_related = ["project"]
    readonly_fields = ["text_hash", "created_at"]

    @admin.display(description="text")
    def short_text(self, sample: Sample) -> str:
        return sample.text[:80]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "original_name", "status", "imported", "duplicates", "created_at"]
    list_filter = ["status"]
    list_select_related = ["project"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "pid", "started_at", "last_seen"]
