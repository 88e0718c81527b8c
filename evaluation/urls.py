from evaluation.benchmark.urls import urlpatterns as benchmark_urlpatterns
from evaluation.curation.urls import urlpatterns as curation_urlpatterns
from evaluation.dashboards.urls import urlpatterns as dashboards_urlpatterns
from evaluation.preferences.urls import urlpatterns as preferences_urlpatterns

app_name = "evaluation"

urlpatterns = curation_urlpatterns + dashboards_urlpatterns + benchmark_urlpatterns + preferences_urlpatterns
