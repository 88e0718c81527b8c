from django.urls import path

from evaluation.curation import views

urlpatterns = [
    path("curation/", views.curation, name="curation"),
    path("curation/counts/", views.curation_counts, name="curation_counts"),
    path("curation/snapshots/new/", views.snapshot_new, name="snapshot_new"),
    path("curation/snapshots/jobs/<int:job_id>/", views.snapshot_job, name="snapshot_job"),
    path(
        "curation/snapshots/jobs/<int:job_id>/progress/",
        views.snapshot_job_progress,
        name="snapshot_job_progress",
    ),
    path("curation/snapshots/<int:version>/", views.snapshot_detail, name="snapshot_detail"),
    path("curation/snapshots/<int:version>/diff/", views.snapshot_compare, name="snapshot_compare"),
    path(
        "curation/snapshots/<int:version>/download/<str:file_format>/",
        views.snapshot_download,
        name="snapshot_download",
    ),
    path(
        "curation/snapshots/<int:version>/export/<str:file_format>/", views.export_start, name="export_start"
    ),
    path(
        "curation/snapshots/<int:version>/for/<str:tool>/",
        views.snapshot_interchange_download,
        name="snapshot_interchange_download",
    ),
    path("curation/exports/<int:job_id>/", views.export_job, name="export_job"),
    path("curation/exports/<int:job_id>/progress/", views.export_job_progress, name="export_job_progress"),
    path("curation/label-issues/", views.label_issues, name="label_issues"),
    path("curation/label-issues/run/", views.label_issues_run, name="label_issues_run"),
    path(
        "curation/label-issues/<int:run_id>/progress/",
        views.label_issues_progress,
        name="label_issues_progress",
    ),
    path("curation/label-issues/<int:run_id>/send/", views.label_issues_send, name="label_issues_send"),
    path("curation/import/label-studio/", views.labelstudio_upload, name="labelstudio_import"),
    path(
        "curation/import/label-studio/<int:job_id>/",
        views.labelstudio_import_job,
        name="labelstudio_import_job",
    ),
    path(
        "curation/import/label-studio/<int:job_id>/progress/",
        views.labelstudio_import_job_progress,
        name="labelstudio_import_job_progress",
    ),
]
