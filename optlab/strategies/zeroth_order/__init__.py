"""Zeroth-order strategies: only values of L, no gradients."""
