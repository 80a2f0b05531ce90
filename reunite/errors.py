"""Every error the reunite library raises on purpose.

One hierarchy, so callers catch what they can act on and the edges (HTTP API, command line)
translate it in one place each::

    ReuniteError
    ├── InvalidInput             the caller sent something we cannot use
    │   ├── InvalidField         a field is missing, malformed or contradicts another
    │   │   └── WebhookTargetRefused  a webhook URL aimed at a loopback, private or
    │   │                             link-local address (see ``webhook_targets``)
    │   ├── UnsupportedImage     not JPEG, PNG or WebP (or animated)
    │   ├── ImageTooLarge        too many bytes, or too many pixels (decompression-bomb guard)
    │   ├── RequestTooLarge      a request body over its limit
    │   ├── UnreadableImage      empty, truncated or corrupt image data
    │   ├── UnreadableFile       a file that cannot be read (missing, no permission)
    │   ├── ImageTooSmall        too few pixels to hold a face
    │   ├── NoFaceFound          a photo in which the detector found no face
    │   │   └── FeaturelessImage a photo nearly uniform (flat colour, no edges), refused
    │   │                        before detection
    │   └── MultipleFaces        a case photo with several faces and no choice of one
    ├── AccessDenied
    │   ├── NotAuthenticated     no valid session (or key), or a wrong password
    │   └── Forbidden            signed in, but the role does not allow this action
    ├── NotFound                 no such case, photo, face, candidate or user
    ├── Conflict                 clashes with what is stored: a duplicate external ref, or a
    │   │                        state change that is not allowed from the current state
    │   └── UndoRefused          a decision that cannot be undone (``reason``: not one's own,
    │                            the undo window passed, a later decision, a case changed)
    ├── RateLimited              too many requests from one key or user; ``retry_after_s`` says
    │                            when to try again
    ├── Overloaded               too many photos (or pixels) in flight in this process;
    │                            ``retry_after_s`` says when to try again
    ├── NotReady                 the service is still starting (loading the index)
    ├── IndexUnusable            index files missing, corrupt or made by another model
    ├── PhotoStoreUnavailable    the object store holding photo files (REUNITE_PHOTO_STORE)
    │                            cannot be reached or refuses us
    ├── StoreUnavailable         the database server (PostgreSQL) cannot be reached, or the
    │                            connection to it was lost
    ├── UnsafeConfiguration      a setting that must not be used in production (a weak
    │                            session key); the service refuses to start
    └── BadConfiguration         a REUNITE_* setting with a value that is not valid (not a
                                 number, out of range, not one of the choices)

Each error has a stable machine-readable ``code`` and a message a person can act on; ``details``
holds extra structured facts (such as the face boxes of a ``MultipleFaces``). Messages never
contain names, image bytes or embeddings: only ids and counts.
"""

from __future__ import annotations

from typing import Any


class ReuniteError(Exception):
    """Base class of all errors raised on purpose by reunite."""

    code = "reunite_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(ReuniteError):
    code = "invalid_input"


class InvalidField(InvalidInput):
    code = "invalid_field"


class WebhookTargetRefused(InvalidField):
    code = "webhook_target_refused"


class UnsupportedImage(InvalidInput):
    code = "unsupported_image"


class ImageTooLarge(InvalidInput):
    code = "image_too_large"


class RequestTooLarge(InvalidInput):
    code = "request_too_large"


class UnreadableImage(InvalidInput):
    code = "unreadable_image"


class UnreadableFile(InvalidInput):
    code = "unreadable_file"


class ImageTooSmall(InvalidInput):
    code = "image_too_small"


class NoFaceFound(InvalidInput):
    code = "no_face_found"


class FeaturelessImage(NoFaceFound):
    code = "featureless_image"


class MultipleFaces(InvalidInput):
    code = "multiple_faces"


class AccessDenied(ReuniteError):
    code = "access_denied"


class NotAuthenticated(AccessDenied):
    code = "not_authenticated"


class Forbidden(AccessDenied):
    code = "forbidden"


class NotFound(ReuniteError):
    code = "not_found"


class Conflict(ReuniteError):
    code = "conflict"


class UndoRefused(Conflict):
    code = "undo_refused"


class RateLimited(ReuniteError):
    code = "rate_limited"


class Overloaded(ReuniteError):
    code = "overloaded"


class NotReady(ReuniteError):
    code = "not_ready"


class IndexUnusable(ReuniteError):
    code = "index_unusable"


class PhotoStoreUnavailable(ReuniteError):
    code = "photo_store_unavailable"


class StoreUnavailable(ReuniteError):
    code = "store_unavailable"


class UnsafeConfiguration(ReuniteError):
    code = "unsafe_configuration"


class BadConfiguration(ReuniteError):
    code = "bad_configuration"
