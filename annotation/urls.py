from annotation.labelling.urls import urlpatterns as labelling_urlpatterns
from annotation.review.urls import urlpatterns as review_urlpatterns
from annotation.routing.urls import urlpatterns as routing_urlpatterns
from annotation.samples.urls import urlpatterns as samples_urlpatterns

app_name = "annotation"

urlpatterns = labelling_urlpatterns + routing_urlpatterns + review_urlpatterns + samples_urlpatterns
