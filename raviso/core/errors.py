"""User-facing errors.

Anything the user can fix (a wrong path, a bad file, a bad option) is raised as `RavisoError` with a
one-line message that names the file and the problem. The CLI prints it as `raviso: error: ...` and
exits non-zero; everything else is a bug and keeps its traceback.
"""


class RavisoError(Exception):
    """A mistake in the user's input: printed as one line, never as a traceback."""

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
