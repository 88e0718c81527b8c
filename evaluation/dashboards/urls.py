from django.urls import path

from evaluation.dashboards import views

urlpatterns = [
    path("evaluation/", views.metrics_overview, name="metrics_overview"),
    path("evaluation/agreement/", views.metrics_agreement, name="metrics_agreement"),
    path("evaluation/diversity/", views.metrics_diversity, name="metrics_diversity"),
    path("evaluation/benchmark/", views.metrics_benchmark, name="metrics_benchmark"),
    path("evaluation/benchmark/start/", views.benchmark_start, name="benchmark_start"),
    path("evaluation/benchmark/<int:run_id>/", views.benchmark_detail, name="benchmark_detail"),
    path("evaluation/preferences/", views.metrics_preferences, name="metrics_preferences"),
    path("evaluation/preferences/import/", views.pairwise_import, name="pairwise_import"),
    path("evaluation/preferences/from-generation/", views.pairwise_from_generation, name="pairwise_from_generation"),
    path("evaluation/pairs/", views.pairwise_review, name="pairwise_review"),
    path("evaluation/judges/start/", views.judge_start, name="judge_start"),
    path("evaluation/judges/<int:run_id>/", views.judge_detail, name="judge_detail"),
    path("evaluation/recompute/", views.metrics_recompute, name="metrics_recompute"),
    path("evaluation/recompute/<int:job_id>/", views.metrics_refresh_status, name="metrics_refresh_status"),
    path("evaluation/csv/<slug:table>.csv", views.metrics_csv, name="metrics_csv"),
]
