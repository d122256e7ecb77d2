"""One exception type for problems the user can fix; the CLI prints it as one line, exit code 2."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing prerequisite: reported as ``signal-noise: error: <message>``."""
