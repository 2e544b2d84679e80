"""First-order strategies: torch.optim optimizers driven by exact mini-batch gradients."""
