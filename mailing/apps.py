from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class MailingConfig(AppConfig):
    name = "mailing"
    verbose_name = gettext_lazy("Mailing")  # the admin's section title

    def ready(self) -> None:
        from mailing import dispatch, metrics  # noqa: F401  (registers the counters)

        metrics.register()
