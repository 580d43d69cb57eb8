from __future__ import annotations

from django.urls import path

from widget import api

# Under /api/ (core/urls.py): agents and admins.
urlpatterns = [
    path("web-inboxes/", api.WebInboxListView.as_view(), name="web-inbox-list"),
    path("web-inboxes/ratings/", api.RatingStatisticsView.as_view(), name="web-inbox-ratings"),
    path("web-inboxes/<int:pk>/", api.WebInboxDetailView.as_view(), name="web-inbox-detail"),
    path("web-inboxes/<int:pk>/rotate/", api.WebInboxRotateView.as_view(), name="web-inbox-rotate"),
    path(
        "help-desks/<uuid:uuid>/visitor/",
        api.HelpDeskVisitorView.as_view(),
        name="help-desk-visitor",
    ),
]
