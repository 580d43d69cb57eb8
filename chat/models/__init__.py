"""Chat's models: conversations (clients, help desks, messages and what agents add to them)
and assistance requests. Split by concern; every model is importable from `chat.models`, as
Django and the migrations (`chat.models.message_file_path`) expect."""

from chat.models.assistance import (
    AssistanceRequest,
    AssistanceTopic,
    AssistanceWebhook,
    AssistanceWebhookAttempt,
)
from chat.models.conversations import (
    CannedReply,
    Client,
    HelpDesk,
    HelpDeskNote,
    HelpDeskRead,
    Message,
    TimeStamped,
    message_file_path,
)

__all__ = [
    "AssistanceRequest",
    "AssistanceTopic",
    "AssistanceWebhook",
    "AssistanceWebhookAttempt",
    "CannedReply",
    "Client",
    "HelpDesk",
    "HelpDeskNote",
    "HelpDeskRead",
    "Message",
    "TimeStamped",
    "message_file_path",
]
