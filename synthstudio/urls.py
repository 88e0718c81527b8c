from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from synthstudio import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("jobs/worker-status/", views.worker_status, name="worker_status"),
    path("projects/new/", views.project_new, name="project_new"),
    path("projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="project_settings"),
    path("projects/<int:project_id>/codebook/", views.codebook_detail, name="codebook_detail"),
    path("projects/<int:project_id>/codebook/edit/", views.codebook_edit, name="codebook_edit"),
    path("projects/<int:project_id>/members/", views.members, name="members"),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path(
        "projects/<int:project_id>/members/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("projects/<int:project_id>/samples/", views.sample_list, name="sample_list"),
    path("projects/<int:project_id>/import/", views.import_upload, name="import_upload"),
    path("projects/<int:project_id>/import/<int:job_id>/", views.import_mapping, name="import_mapping"),
    path(
        "projects/<int:project_id>/import/<int:job_id>/progress/",
        views.import_progress,
        name="import_progress",
    ),
    path("projects/<int:project_id>/jobs/<str:kind>/<int:job_id>/retry/", views.job_retry, name="job_retry"),
    path("projects/<int:project_id>/", include("generation.urls")),
    path("projects/<int:project_id>/", include("annotation.urls")),
    path("projects/<int:project_id>/", include("evaluation.urls")),
    path("api/", include("evaluation.api.urls")),
    path("admin/", admin.site.urls),
]
