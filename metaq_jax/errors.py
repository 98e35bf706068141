"""The error a user's mistake raises, told apart from every other failure.

`InputError` is a `ValueError`, so code that catches `ValueError` keeps working; the `metaq`
command prints it as one line with exit status 2, and treats any other exception as a bug.
"""


class InputError(ValueError):
    """A value, file, flag or folder given by the user cannot be used.

    The message is one line naming the field (or file, flag, folder), the value and what is
    allowed.

    Args:
      message: that line.
      field: the config field it refuses, where it refuses one (the CLI names where the value came from).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
