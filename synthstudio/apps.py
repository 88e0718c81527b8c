from django.apps import AppConfig


class SynthstudioConfig(AppConfig):
    name = "synthstudio"
    verbose_name = "synthstudio core"
    default_auto_field = "django.db.models.BigAutoField"
