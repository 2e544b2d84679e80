"""Strategies: first-order (torch.optim), second-order and zeroth-order, behind one registry."""

from optlab.strategies.base import Option, Plan, Strategy
from optlab.strategies.registry import available, register, register_prefix, resolve

__all__ = ["Option", "Plan", "Strategy", "available", "register", "register_prefix", "resolve"]
