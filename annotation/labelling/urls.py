from django.urls import path

from annotation.labelling import views

urlpatterns = [
    path("labelling/", views.labelling_overview, name="labelling_overview"),
    path("labelling/runs/start/", views.labelling_run_start, name="labelling_run_start"),
    path("labelling/runs/refine/", views.refine_run_start, name="refine_run_start"),
    path("labelling/runs/<int:run_id>/", views.labelling_run_detail, name="labelling_run_detail"),
    path("labelling/runs/<int:run_id>/cancel/", views.labelling_run_cancel, name="labelling_run_cancel"),
    path("labelling/runs/<int:run_id>/resume/", views.labelling_run_resume, name="labelling_run_resume"),
    path("labelling/signals/start/", views.signals_run_start, name="signals_run_start"),
    path("labelling/signals/<int:run_id>/", views.signals_run_progress, name="signals_run_progress"),
]
