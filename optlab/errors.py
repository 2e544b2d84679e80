"""Errors a user can act on. Each carries a one-line message naming the bad value."""


class OptlabError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class ConfigError(OptlabError, ValueError):
    """A configuration value is invalid (unknown name, wrong type, out of range)."""


class DataError(OptlabError):
    """A dataset cannot be loaded: missing file, failed checksum, offline download."""


class InfeasibleError(OptlabError):
    """A strategy cannot run at this problem size (memory or time), with a suggestion."""


class StoreError(OptlabError):
    """The tracking store cannot be used: unwritable, full, unreachable, or lost in the middle of a sweep."""


class SweepBusy(OptlabError):
    """Another process holds the sweep's lock in this store."""


class SweepIncomplete(OptlabError):
    """Some points of a sweep have no outcome (not run, worker died, storage failed): rerun it to run them.
    `report` is the sweep's report."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report
