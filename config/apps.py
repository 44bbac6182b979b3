from django.apps import AppConfig


class ModelgateConfig(AppConfig):
    """The composition root as an app, so Django finds the commands that span every app
    (``manage.py demo``). It holds no models."""

    name = "config"
    label = "config"
    verbose_name = "Modelgate"
