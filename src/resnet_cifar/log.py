"""One-line notices on stderr for things a user should know but that do not stop the job."""
import sys


def notice(message: str) -> None:
    """Print ``message`` as one line on stderr."""
    print(f"resnet-cifar: notice: {message}", file=sys.stderr, flush=True)
