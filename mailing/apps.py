from django.apps import AppConfig


class MailingConfig(AppConfig):
    name = "mailing"

    def ready(self) -> None:
        from mailing import dispatch, metrics  # noqa: F401  (registers the counters)

        metrics.register()
