"""The one error type the library raises for problems a user can act on."""


class DinogenError(Exception):
    """A problem with the user's data, options or files, stated in one sentence.

    The CLI prints the message as it is and exits with status 1, so the message
    says what is wrong, with what, and what to do about it.
    """
