"""Shared pieces of the zeroth-order family: the infeasibility error."""

from __future__ import annotations

from optlab.errors import ConfigError, InfeasibleError


class Infeasible(InfeasibleError, ConfigError):
    """A setting that cannot run at this problem size. Both an InfeasibleError (what it is) and a
    ConfigError (so the CLI, the engine and sweep validation refuse it before any run is recorded)."""
