from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # synthstudio cannot import this app: it announces finished imports and routing signals follow them
        from annotation.routing.signals import signals_run_after_import
        from synthstudio.services import samples_imported

        samples_imported.connect(signals_run_after_import, dispatch_uid="annotation.signals_run_after_import")
        # generation cannot import this app either: its automatic rounds ask these steps to label and route
        from annotation.round_steps import AnnotationRoundSteps
        from generation.services.rounds_loop import round_steps_register

        round_steps_register(AnnotationRoundSteps())
