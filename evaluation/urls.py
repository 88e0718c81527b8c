from evaluation.curation.urls import urlpatterns as curation_urlpatterns
from evaluation.dashboards.urls import urlpatterns as metrics_urlpatterns

app_name = "evaluation"

urlpatterns = curation_urlpatterns + metrics_urlpatterns
