from __future__ import annotations

from django.urls import path

from widget import public_api

# Under /widget/api/<token>/ (core/urls.py): the public widget (widget/public_api.py).
urlpatterns = [
    path("config/", public_api.ConfigView.as_view(), name="widget-config"),
    path("strings/", public_api.StringsView.as_view(), name="widget-strings"),
    path("start/", public_api.StartView.as_view(), name="widget-start"),
    path("messages/", public_api.MessageView.as_view(), name="widget-messages"),
    path("typing/", public_api.TypingView.as_view(), name="widget-typing"),
    path("read/", public_api.ReadView.as_view(), name="widget-read"),
    path("rating/", public_api.RatingView.as_view(), name="widget-rating"),
]
