"""Maps the product's exceptions to HTTP statuses and stable error codes (no tracebacks, no internals)."""

from __future__ import annotations

from rag import errors
from rag.audit import AuditUnavailableError
from rag.auth.oidc import InvalidTokenError

_TABLE: list[tuple[type[Exception], int, str]] = [
    (errors.AuthenticationError, 401, "unauthorized"),
    (errors.PermissionDeniedError, 403, "forbidden"),
    (errors.NotFoundError, 404, "not_found"),
    (errors.PathNotAllowedError, 403, "path_not_allowed"),
    (errors.QuestionTooLongError, 413, "question_too_long"),
    (errors.InvalidRequestError, 422, "invalid_request"),
    (errors.IndexUnavailableError, 503, "index_unavailable"),
    (errors.GeneratorUnavailableError, 503, "generator_unavailable"),
    (errors.GeneratorTimeoutError, 504, "generator_timeout"),
    (errors.ConfigError, 503, "misconfigured"),
    (AuditUnavailableError, 503, "audit_unavailable"),
]


def classify(exc: Exception) -> tuple[int, str, str]:
    for cls, status, code in _TABLE:
        if isinstance(exc, cls):
            return status, code, str(exc)
    if isinstance(exc, InvalidTokenError):
        return 401, "unauthorized", str(exc)
    if isinstance(exc, errors.RagError):
        return 400, "bad_request", str(exc)
    return 500, "internal_error", "internal error"
