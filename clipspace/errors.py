"""Errors that mean "bad input": the CLI prints them and exits with code 2."""


class ClipspaceError(ValueError):
    """Bad user input; the message names the file, line or key at fault."""


class DataError(ClipspaceError):
    """A malformed data file, row, column or image."""
