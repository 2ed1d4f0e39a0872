"""One exception hierarchy for the whole product; only api/ maps these to HTTP statuses."""


class RagError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigError(RagError):
    """Settings or environment make the requested operation impossible."""


class NotFoundError(RagError):
    pass


class PathNotAllowedError(RagError):
    """A path lies outside the configured ingest roots."""


class ParseError(RagError):
    """One file could not be turned into text; the job goes on without it."""


class IndexUnavailableError(RagError):
    """No loadable index generation, or one that disagrees with the database."""


class IndexInconsistentError(IndexUnavailableError):
    pass


class LockBusyError(RagError):
    """Another process holds the index writer lock."""


class QuestionTooLongError(RagError):
    """The question exceeds the configured maximum length."""


class GeneratorUnavailableError(RagError):
    """The language model server cannot be reached or failed."""


class GeneratorTimeoutError(RagError):
    """The language model did not answer in time."""


class InvalidRequestError(RagError):
    """A request that is well-formed JSON but cannot be served as asked (422)."""


class AuthenticationError(RagError):
    """No credentials, or credentials that are invalid, expired or revoked (401)."""


class PermissionDeniedError(RagError):
    """Authenticated, but this role may not use this route (403)."""
