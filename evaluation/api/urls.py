from django.urls import path

from evaluation.api import views as api

app_name = "api"

urlpatterns = [
    path("tokens/", api.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", api.token_revoke, name="token_revoke"),
    path("projects/", api.projects, name="projects"),
    path("projects/<int:project_id>/snapshots/", api.snapshots, name="snapshots"),
    path("projects/<int:project_id>/snapshots/<int:version>/", api.snapshot_detail, name="snapshot_detail"),
    path(
        "projects/<int:project_id>/snapshots/<int:version>/download/<str:file_format>/",
        api.snapshot_download,
        name="snapshot_download",
    ),
    path("projects/<int:project_id>/exports/<int:job_id>/", api.export_job, name="export_job"),
]
