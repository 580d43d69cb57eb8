from __future__ import annotations

from django.urls import path

from chat import api, assistance_api, console_api, files_api, workflow_api

urlpatterns = [
    # The console's inbox views and workflow (issue 13) extend chat/api.py's views.
    path("help-desks/", workflow_api.HelpDeskInboxView.as_view(), name="help-desk-list"),
    path(
        "help-desks/counts/",
        workflow_api.HelpDeskCountsView.as_view(),
        name="help-desk-counts",
    ),
    path(
        "help-desks/<uuid:uuid>/",
        workflow_api.HelpDeskWorkflowView.as_view(),
        name="help-desk-detail",
    ),
    path(
        "help-desks/<uuid:uuid>/history/",
        api.HelpDeskHistoryView.as_view(),
        name="help-desk-history",
    ),
    path("help-desks/<uuid:uuid>/read/", api.HelpDeskReadView.as_view(), name="help-desk-read"),
    path(
        "help-desks/<uuid:uuid>/notes/",
        console_api.HelpDeskNotesView.as_view(),
        name="help-desk-notes",
    ),
    path("canned-replies/", console_api.CannedReplyListView.as_view(), name="canned-reply-list"),
    path("search/", console_api.SearchView.as_view(), name="search"),
    path(
        "canned-replies/<int:pk>/",
        console_api.CannedReplyDetailView.as_view(),
        name="canned-reply-detail",
    ),
    path("send-message/", api.SendMessageView.as_view(), name="send-message"),
    path("inbound-message/", api.InboundMessageView.as_view(), name="inbound-message"),
    path(
        "messages/<uuid:uuid>/receipts/", api.MessageReceiptView.as_view(), name="message-receipt"
    ),
    path("messages/<uuid:uuid>/retry/", api.MessageRetryView.as_view(), name="message-retry"),
    # customer files (chat/files.py): authorized download, and the signed link
    path("messages/<uuid:uuid>/file/", files_api.MessageFileView.as_view(), name="message-file"),
    path("files/<str:token>/", files_api.FileLinkView.as_view(), name="message-file-link"),
    path("clients/", api.ClientListView.as_view(), name="client-list"),
    path("clients/<uuid:uuid>/", api.ClientDetailView.as_view(), name="client-detail"),
    path(
        "clients/<uuid:uuid>/context/",
        console_api.ClientContextView.as_view(),
        name="client-context",
    ),
    # assistance (issue #4)
    path("assistance/", assistance_api.AssistanceListView.as_view(), name="assistance-list"),
    path(
        "assistance/topics/", assistance_api.TopicListView.as_view(), name="assistance-topic-list"
    ),
    path(
        "assistance/topics/<int:pk>/",
        assistance_api.TopicDetailView.as_view(),
        name="assistance-topic-detail",
    ),
    path(
        "assistance/<uuid:uuid>/",
        assistance_api.AssistanceDetailView.as_view(),
        name="assistance-detail",
    ),
    path(
        "assistance/<uuid:uuid>/accept/",
        assistance_api.AssistanceAcceptView.as_view(),
        name="assistance-accept",
    ),
]
