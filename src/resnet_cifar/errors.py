"""The one exception type for mistakes a user can make; the CLI prints its message without a traceback."""


class ResnetCifarError(Exception):
    """A problem caused by user input (bad option, missing file, corrupt checkpoint), with a one-line fix.

    ``exit_code`` is what the command line exits with (2 for a usage error).
    """

    exit_code = 2
