from __future__ import annotations

from django.urls import path

from mailing import api, email_api, events_api, variants_api

urlpatterns = [
    path("mailings/", api.MailingListView.as_view(), name="mailing-list"),
    path("mailings/stats/", api.MailingOverallStatsView.as_view(), name="mailing-stats-overall"),
    path("mailings/<int:pk>/", api.MailingDetailView.as_view(), name="mailing-detail"),
    path("mailings/<int:pk>/cancel/", api.MailingCancelView.as_view(), name="mailing-cancel"),
    path("mailings/<int:pk>/stats/", api.MailingStatsView.as_view(), name="mailing-stats"),
    path("mailings/<int:pk>/messages/", api.MailingMessagesView.as_view(), name="mailing-messages"),
    path("templates/", api.TemplateListView.as_view(), name="template-list"),
    path("templates/<int:pk>/", api.TemplateDetailView.as_view(), name="template-detail"),
    path("templates/<int:pk>/preview/", api.TemplatePreviewView.as_view(), name="template-preview"),
    path(
        "templates/<int:pk>/variants/<str:language>/",
        variants_api.TemplateVariantView.as_view(),
        name="template-variant",
    ),
    path("notifications/", api.NotificationView.as_view(), name="notification-send"),
    path("email/bounces/", email_api.EmailBounceView.as_view(), name="email-bounces"),
    path("events/", events_api.EventListView.as_view(), name="event-list"),
    path("event-rules/", events_api.EventRuleListView.as_view(), name="event-rule-list"),
    path(
        "event-rules/<int:pk>/", events_api.EventRuleDetailView.as_view(), name="event-rule-detail"
    ),
]
