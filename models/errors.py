"""Errors a user can cause and fix; the CLI and API show their message, not a traceback."""


class BreachError(Exception):
    """Base for every error whose message is meant for the person at the keyboard."""


class NotFound(BreachError):
    pass


class IllegalTransition(BreachError):
    pass


class InvalidInput(BreachError):
    pass


class ProviderUnavailable(BreachError):
    """A notifier's provider cannot be used right now; nothing was lost, retry later."""
