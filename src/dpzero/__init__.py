"""dpzero: a self-hostable data preview platform for astronomical surveys."""

__version__ = "0.1.0"
