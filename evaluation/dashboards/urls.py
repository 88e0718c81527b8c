from django.urls import path

from evaluation.dashboards import views

urlpatterns = [
    path("evaluation/", views.metrics_overview, name="metrics_overview"),
    path("evaluation/agreement/", views.metrics_agreement, name="metrics_agreement"),
    path("evaluation/diversity/", views.metrics_diversity, name="metrics_diversity"),
    path("evaluation/estimates/", views.metrics_estimates, name="metrics_estimates"),
    path("evaluation/recompute/", views.metrics_recompute, name="metrics_recompute"),
    path("evaluation/recompute/<int:job_id>/", views.metrics_refresh_status, name="metrics_refresh_status"),
    path("evaluation/csv/<slug:table>.csv", views.metrics_csv, name="metrics_csv"),
]
