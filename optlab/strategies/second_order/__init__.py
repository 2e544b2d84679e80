"""Second-order strategies: curvature from Hessian or Gauss-Newton products, quasi-Newton."""
