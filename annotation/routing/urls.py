from django.urls import path

from annotation.routing import views

urlpatterns = [
    path("routing/", views.routing_policy, name="routing_policy"),
    path("routing/items/", views.routed_items, name="routed_items"),
]
