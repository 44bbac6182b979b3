from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Audit and access"

    def ready(self) -> None:
        # signal receivers (refused sign-ins, lock-outs, refusals from the API's edge), and
        # the token scheme in the OpenAPI schema
        from core import refusals, schema  # noqa: F401
