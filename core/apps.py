from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Platform"

    def ready(self) -> None:
        # Registers the outbound-policy deploy check and says at startup when it is relaxed.
        from core import outbound

        outbound.warn_if_private_allowed()
