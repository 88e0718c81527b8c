from django.urls import path

from evaluation.benchmark import views

urlpatterns = [
    path("evaluation/benchmark/", views.metrics_benchmark, name="metrics_benchmark"),
    path("evaluation/benchmark/start/", views.benchmark_start, name="benchmark_start"),
    path("evaluation/benchmark/<int:run_id>/", views.benchmark_detail, name="benchmark_detail"),
]
