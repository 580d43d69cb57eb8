"""Escalation routes (included at the root by core.urls)."""

from __future__ import annotations

from django.urls import path

from escalation import api

urlpatterns = [
    path("api/triggers/", api.TriggersView.as_view(), name="triggers"),
    path("api/alertmanager/", api.AlertmanagerView.as_view(), name="alertmanager"),
    path("api/incidents/", api.IncidentListView.as_view(), name="incident-list"),
    path("api/incidents/<uuid:uuid>/", api.IncidentDetailView.as_view(), name="incident-detail"),
    path(
        "api/incidents/<uuid:uuid>/acknowledge/",
        api.IncidentAcknowledgeView.as_view(),
        name="incident-acknowledge",
    ),
    path(
        "api/incidents/<uuid:uuid>/resolve/",
        api.IncidentResolveView.as_view(),
        name="incident-resolve",
    ),
    path("api/escalation/rules/", api.RuleListView.as_view(), name="rule-list"),
    path("api/escalation/rules/<int:pk>/", api.RuleDetailView.as_view(), name="rule-detail"),
    path("api/teams/", api.TeamListView.as_view(), name="team-list"),
    path("api/teams/<int:pk>/", api.TeamDetailView.as_view(), name="team-detail"),
]
