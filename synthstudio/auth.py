"""The authentication backend: Django's ModelBackend, with the per-request user lookup in plain SQL.

Every request of a logged-in user loads the user row; through the ORM that lookup cost more CPU than the query
(see synthstudio.fastsql). Passwords, permissions and everything else are Django's own.
"""

from __future__ import annotations

from django.contrib.auth import backends, get_user_model
from django.core.exceptions import ValidationError

from . import fastsql


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        model = get_user_model()
        try:
            user_id = model._meta.pk.to_python(user_id)
        except ValidationError:
            return None
        quote = fastsql.connection.ops.quote_name
        row = fastsql.fetchone(
            f"SELECT {fastsql.columns(model, 'u')} FROM {quote(model._meta.db_table)} u"
            f" WHERE u.{quote(model._meta.pk.column)} = %s",
            [user_id],
        )
        user = fastsql.instance(model, row) if row else None
        return user if user is not None and self.user_can_authenticate(user) else None
