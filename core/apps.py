from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = gettext_lazy("Platform")

    def ready(self) -> None:
        # Registers the outbound-policy deploy check and says at startup when it is relaxed.
        from core import outbound

        outbound.warn_if_private_allowed()
