"""The base of every error BearID reports to a user as a message rather than a traceback."""


class BearIDError(Exception):
    """Bad input or a refused operation: the message says what and where."""
