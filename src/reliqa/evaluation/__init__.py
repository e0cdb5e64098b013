"""Evaluation: correlations with human opinion, GMC surfaces, dataset readers, benchmark runner.

Submodules are imported on use (``from reliqa.evaluation.gmc import gmc``) so that importing
this package stays cheap.
"""
