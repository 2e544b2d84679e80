"""Numbers behind every comparison: confidence intervals, paired tests, censored time to target,
performance profiles, learning-rate sensitivity and the gradient noise scale.

Pure functions of arrays and frames (the noise scale also of a problem and parameters): no MLflow, no
plotting. The report (optlab.reports) draws and words what these compute, so an interactive view can
reuse them. Statistics come from scipy.stats (and statsmodels for Holm's correction) and are tested
against them.
"""
