"""One exception hierarchy for the whole product; only api/ maps these to HTTP statuses.

Errors are grouped by whose move it is: the caller's (`RequestError`: fix the request), the
service's (`UnavailableError`: retry later or call the operator), a policy that stopped something
on purpose (`PolicyError`), or one piece of ingestion work that failed alone (`ProcessingError`).
The API maps groups to statuses in one table (api/errors.py); a new error lands in a group and is
mapped without touching the API.
"""


class RagError(Exception):
    """Base of every error the product raises on purpose."""


# --- the caller's move: 4xx -----------------------------------------------------------------------


class RequestError(RagError):
    """The request cannot be served as asked; nothing is wrong with the service."""


class InvalidRequestError(RequestError):
    """Well-formed, but not something that can be served (422)."""


class QuestionTooLongError(InvalidRequestError):
    """The question exceeds the configured maximum length (413)."""


class BodyTooLargeError(RequestError):
    """The request body is larger than the API accepts, counted on the bytes read (413)."""


class RequestTimeoutError(RequestError):
    """The request body did not arrive within the read deadline (408)."""


class RateLimitedError(RequestError):
    """Too many failed authentications from this client address; retry later (429)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFoundError(RequestError):
    """The named object does not exist, or the caller may not know that it does (404)."""


class AuthenticationError(RequestError):
    """No credentials, or credentials that are invalid, expired or revoked (401)."""


class InvalidTokenError(AuthenticationError):
    """The bearer token is not a valid token of the configured identity provider."""


class PromotionRefusedError(InvalidRequestError):
    """A candidate embedder did not pass the evaluation gate (or cannot be promoted or rolled back now)."""


class PermissionDeniedError(RequestError):
    """Authenticated, but this role may not do this (403)."""


class PathNotAllowedError(PermissionDeniedError):
    """A path lies outside the configured ingest roots (403)."""


# --- the service's move: 5xx ----------------------------------------------------------------------


class UnavailableError(RagError):
    """A dependency of the service is missing or failing; the request may succeed later (503)."""


class ConfigError(UnavailableError):
    """Settings or environment make the requested operation impossible."""


class IndexUnavailableError(UnavailableError):
    """No loadable index generation, or one that disagrees with the database."""


class ModelMismatchError(IndexUnavailableError):
    """The live index generation was built by an embedder this process cannot load as it was pinned
    (another model, changed weights, another dimension): refused, never searched with a mixed model."""


class DatabaseUnavailableError(UnavailableError):
    """The database cannot be reached (down, restarting, or the connection was cut); retry later."""


class IndexWriteError(UnavailableError):
    """A new index generation could not be written (e.g. the disk is full); the previous one stays live."""


class AuditUnavailableError(UnavailableError):
    """The audit record could not be written: the answer is withheld."""


class GeneratorUnavailableError(UnavailableError):
    """The language model server cannot be reached or failed."""


class GeneratorTimeoutError(GeneratorUnavailableError):
    """The language model did not answer in time (504)."""


class GenerationInterruptedError(GeneratorUnavailableError):
    """The model failed after part of its answer had been released: no fallback may finish it."""


# --- a policy stopped something on purpose ---------------------------------------------------------


class PolicyError(RagError):
    """A safety policy refused to go on; callers fail closed (the query stays local)."""


class EgressBlockedError(PolicyError):
    """An outbound request to the external model was stopped before it left."""


class DetectionError(PolicyError):
    """A sensitivity detector failed, timed out or returned nonsense: it cannot vouch for the text."""

    def __init__(self, detector: str, problem: str) -> None:
        super().__init__(f"detector {detector}: {problem}")
        self.detector = detector
        self.problem = problem


# --- one piece of ingestion work failed alone ------------------------------------------------------


class ProcessingError(RagError):
    """A unit of background work failed; the job goes on or retries (never an HTTP response)."""


class ParseError(ProcessingError):
    """One file could not be turned into text; the job goes on without it."""


class LockBusyError(ProcessingError):
    """Another process holds the index writer lock."""
