from .curation_urls import urlpatterns as curation_urlpatterns
from .metrics_urls import urlpatterns as metrics_urlpatterns

app_name = "evaluation"

urlpatterns = curation_urlpatterns + metrics_urlpatterns
