from django.urls import path

from annotation.review import views

urlpatterns = [
    path("review/", views.review_queue, name="review_queue"),
    path("review/<int:assignment_id>/answer/", views.review_answer, name="review_answer"),
    path("review/<int:assignment_id>/skip/", views.review_skip, name="review_skip"),
    path("review/<int:assignment_id>/edit/", views.review_answer_edit, name="review_answer_edit"),
    path("review/undo/", views.review_undo, name="review_undo"),
    path("review/history/", views.review_history, name="review_history"),
    path("review/lead/", views.review_overview, name="review_overview"),
    path("review/lead/aggregation/", views.label_aggregation_set, name="label_aggregation_set"),
    path(
        "review/lead/reservations/<int:assignment_id>/release/", views.review_release, name="review_release"
    ),
    path(
        "review/lead/reservations/<int:assignment_id>/reassign/",
        views.review_reassign,
        name="review_reassign",
    ),
    path("review/adjudicate/", views.adjudication_list, name="adjudication_list"),
    path("review/adjudicate/<int:sample_id>/", views.adjudication_detail, name="adjudication_detail"),
    path("review/gold/", views.gold_items, name="gold_items"),
    path("review/gold/rate/", views.gold_rate_set, name="gold_rate_set"),
    path("review/gold/<int:gold_id>/remove/", views.gold_item_remove, name="gold_item_remove"),
    path("review/corrections/", views.text_corrections, name="text_corrections"),
    path(
        "review/corrections/accept-all/",
        views.text_corrections_accept_all,
        name="text_corrections_accept_all",
    ),
    path(
        "review/corrections/<int:correction_id>/decide/",
        views.text_correction_decide,
        name="text_correction_decide",
    ),
]
