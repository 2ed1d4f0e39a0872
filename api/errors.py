"""Maps the product's exceptions to HTTP statuses and stable error codes (no tracebacks, no internals).

The most specific row wins: rows are checked in order, groups of rag.errors come after their members.
"""

from __future__ import annotations

from rag import errors

_TABLE: list[tuple[type[Exception], int, str]] = [
    (errors.QuestionTooLongError, 413, "question_too_long"),
    (errors.InvalidRequestError, 422, "invalid_request"),
    (errors.BodyTooLargeError, 413, "body_too_large"),
    (errors.RequestTimeoutError, 408, "request_timeout"),
    (errors.RateLimitedError, 429, "rate_limited"),
    (errors.NotFoundError, 404, "not_found"),
    (errors.AuthenticationError, 401, "unauthorized"),
    (errors.PathNotAllowedError, 403, "path_not_allowed"),
    (errors.PermissionDeniedError, 403, "forbidden"),
    (errors.RequestError, 400, "bad_request"),
    (errors.IndexUnavailableError, 503, "index_unavailable"),
    (errors.GeneratorTimeoutError, 504, "generator_timeout"),
    (errors.GeneratorUnavailableError, 503, "generator_unavailable"),
    (errors.AuditUnavailableError, 503, "audit_unavailable"),
    (errors.DatabaseUnavailableError, 503, "database_unavailable"),
    (errors.ConfigError, 503, "misconfigured"),
    (errors.UnavailableError, 503, "unavailable"),
]


def classify(exc: Exception) -> tuple[int, str, str]:
    """(status, code, message) for any exception; unknown ones are a 500 that reveals nothing."""
    for cls, status, code in _TABLE:
        if isinstance(exc, cls):
            return status, code, str(exc)
    if isinstance(exc, errors.RagError):
        return 400, "bad_request", str(exc)
    return 500, "internal_error", "internal error"
