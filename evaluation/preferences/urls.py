from django.urls import path

from evaluation.preferences import views

urlpatterns = [
    path("evaluation/preferences/", views.metrics_preferences, name="metrics_preferences"),
    path("evaluation/preferences/import/", views.pairwise_import, name="pairwise_import"),
    path(
        "evaluation/preferences/from-generation/",
        views.pairwise_from_generation,
        name="pairwise_from_generation",
    ),
    path("evaluation/pairs/", views.pairwise_review, name="pairwise_review"),
    path("evaluation/pairs/waiting/", views.pairwise_waiting_badge, name="pairwise_waiting_badge"),
    path("evaluation/judges/start/", views.judge_start, name="judge_start"),
    path("evaluation/judges/<int:run_id>/", views.judge_detail, name="judge_detail"),
]
