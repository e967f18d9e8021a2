"""Why a call found no key: `NoAvailableKeyError` and its kinds, each also the Agno error that means the same.

Agno's own fallback (``Agent(fallback_config=FallbackConfig(...))``) decides by the error it
catches (``agno/models/fallback.py``, ``get_fallback_models``): a ``ModelRateLimitError``, or any
``ModelProviderError`` with status 429, goes to ``on_rate_limit``; another 4xx is never masked
(raised to the caller); anything else goes to ``on_error``. Its retry loop
(``Model._invoke_with_retry``) does not retry 400, 401, 403, 404, 413 or 422. So:

| error | Agno reads it as | status |
| --- | --- | --- |
| `PoolExhaustedError`: no key free within the wait budget | ``ModelRateLimitError`` | 429 |
| `AllKeysDeadError`: every key retired (401/402/403) | ``ModelAuthenticationError`` | 401 |
| `ProviderBusyError`: the provider is backed off, or keeps failing | a retryable provider error | 503 |
| `RequestTooLargeError`: ``estimated_tokens`` more than any key can take | ``ContextWindowExceededError`` | 413 |

(Agno reads a ``ModelProviderError``'s message too: one holding "token limit", "max_tokens" and the
like becomes a ``ContextWindowExceededError`` in its place, so these messages avoid those words.)

Every one is also a ``keycycle.NoAvailableKeyError``, so code written against keycycle (or
against this registry before these kinds existed) still catches them all. Importing this module
imports ``agno.exceptions``: it is loaded with the pool, never by ``import hfs_core``.
"""

from __future__ import annotations

from agno.exceptions import (
    ContextWindowExceededError,
    ModelAuthenticationError,
    ModelProviderError,
    ModelRateLimitError,
)

from hfs_core._keycycle import NoAvailableKeyError as KeycycleNoAvailableKeyError
from hfs_core.errors import HFSError

ERROR_TYPE = "no_available_key_error"
"""The ``type`` of every one of these errors: what an Agno run's error event carries as ``error_type``."""


class NoAvailableKeyError(HFSError, KeycycleNoAvailableKeyError, ModelProviderError):  # type: ignore[misc]
    """No key of the provider (or of any entry of a tier) can take the call within the caller's wait budget.

    Raised as one of its kinds (`PoolExhaustedError`, `AllKeysDeadError`, `ProviderBusyError`,
    `RequestTooLargeError`). ``next_free_in`` is the
    number of seconds until a key frees up (None: unknown, or never). For a tier, ``provider`` is
    the tier's name and ``entries`` holds one line per entry saying where it stood.
    """

    status = 503
    agno_error_id = "model_provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model_id: str,
        wait: bool,
        timeout: float,
        total_keys: int,
        dead_keys: int,
        cooling_down: int,
        next_free_in: float | None,
        entries: tuple[str, ...] = (),
    ) -> None:
        KeycycleNoAvailableKeyError.__init__(
            self, provider, model_id, wait, timeout, total_keys=total_keys, cooling_down=cooling_down
        )
        ModelProviderError.__init__(self, message, self.status, model_name=provider, model_id=model_id)
        self.args = (message,)
        self.type = ERROR_TYPE
        self.error_id = self.agno_error_id
        self.dead_keys = dead_keys
        self.next_free_in = next_free_in
        self.entries = entries

    @property
    def may_free(self) -> bool:
        """Whether waiting could ever help (a key frees up, the provider's back-off ends)."""
        return isinstance(self, PoolExhaustedError | ProviderBusyError)


class PoolExhaustedError(NoAvailableKeyError, ModelRateLimitError):  # type: ignore[misc]
    """Every live key is at a limit (or busy) past the wait budget; Agno's ``ModelRateLimitError`` (429)."""

    status = 429
    agno_error_id = "model_rate_limit_error"


class AllKeysDeadError(NoAvailableKeyError, ModelAuthenticationError):  # type: ignore[misc]
    """Every key was refused as invalid, unpaid or forbidden; Agno's ``ModelAuthenticationError`` (401)."""

    status = 401
    agno_error_id = "model_authentication_error"


class ProviderBusyError(NoAvailableKeyError):
    """The provider is backed off past the wait budget (it answered busy, or kept failing); retryable (503)."""

    status = 503


class RequestTooLargeError(NoAvailableKeyError, ContextWindowExceededError):  # type: ignore[misc]
    """The call's ``estimated_tokens`` is more than any key can ever take; Agno's
    ``ContextWindowExceededError`` (413)."""

    status = 413
    agno_error_id = "context_window_exceeded_error"
