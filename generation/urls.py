from django.urls import path

from generation import views

app_name = "generation"

urlpatterns: list = [
    path("generation/", views.generation_home, name="home"),
    path("generation/endpoints/", views.endpoint_list, name="endpoint_list"),
    path("generation/endpoints/<int:endpoint_id>/edit/", views.endpoint_edit, name="endpoint_edit"),
    path("generation/endpoints/<int:endpoint_id>/test/", views.endpoint_test, name="endpoint_test"),
    path("generation/configs/new/", views.config_new, name="config_new"),
    path("generation/configs/<int:config_id>/", views.config_detail, name="config_detail"),
    path("generation/configs/<int:config_id>/edit/", views.config_edit, name="config_edit"),
    path("generation/configs/<int:config_id>/preview/", views.config_preview, name="config_preview"),
    path("generation/configs/<int:config_id>/run/", views.run_start, name="run_start"),
    path("generation/configs/<int:config_id>/proposals/", views.proposals_request, name="proposals_request"),
    path("generation/proposals/<int:proposal_id>/decide/", views.proposal_decide, name="proposal_decide"),
    path("generation/runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("generation/runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("generation/runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("generation/runs/<int:run_id>/next-round/", views.run_next_round, name="run_next_round"),
    path("generation/outputs/", views.outputs, name="outputs"),
    path("generation/outputs/<int:item_id>/", views.output_detail, name="output_detail"),
]
