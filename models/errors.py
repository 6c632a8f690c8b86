"""Errors a user can cause and fix; the CLI and API show their message, not a traceback."""


class BreachError(Exception):
    """Base for every error whose message is meant for the person at the keyboard.

    Their messages are written never to quote a contact detail, so they may be stored.
    """


def safe_reason(exc: BaseException) -> str:
    """A failure's reason fit for the ledger and the timeline.

    Our own errors say what happened. Anything else may quote its input (a validation
    error quotes the address it rejected), so only its type is kept; the traceback is in
    Prefect's log.
    """
    if isinstance(exc, BreachError):
        return str(exc)[:1000]
    return f"{type(exc).__name__} (unexpected; the traceback is in the Prefect log)"


class NotFound(BreachError):
    pass


class IllegalTransition(BreachError):
    pass


class InvalidInput(BreachError):
    pass


class Forbidden(BreachError):
    """The caller's role, or who they are, may not do this (a gate's approval)."""


class ProviderUnavailable(BreachError):
    """A notifier's provider cannot be used right now; nothing was lost, retry later."""


class RateLimited(BreachError):
    """Too many requests from one sender for now; try again later."""
