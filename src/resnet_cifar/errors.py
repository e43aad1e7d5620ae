"""The one exception type for mistakes a user can make; the CLI prints its message without a traceback."""


class ResnetCifarError(Exception):
    """A problem caused by user input (bad option, missing file, corrupt checkpoint), with a one-line fix.

    ``exit_code`` is what the command line exits with (2 for a usage error).
    """

    exit_code = 2


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def require_positive_int(name: str, value: int) -> None:
    """Raise the one-line error of option ``--name`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResnetCifarError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def require_seed(value: int, option: str = "--seed") -> None:
    """Raise the one-line error of a seed option unless ``value`` is an integer numpy and torch both take."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ResnetCifarError(f"{option} must be an integer from 0 to {2**32 - 1}, got {value!r}")


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a non-negative integer in ASCII digits (``str.isdigit`` also takes superscripts such as
    '²', which ``int`` refuses)."""
    return text.isascii() and text.isdigit()
