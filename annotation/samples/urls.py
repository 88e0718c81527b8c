from django.urls import path

from annotation.samples import views

urlpatterns = [
    path("samples/actions/", views.sample_action, name="sample_action"),
    path("samples/actions/<int:job_id>/", views.sample_action_job, name="sample_action_job"),
]
