from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = gettext_lazy("Chat")  # the admin's section title
