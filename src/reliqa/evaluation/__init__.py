"""Evaluation: correlations with human opinion, dataset readers, the scorer catalogue, benchmarks.

GMC surfaces are :mod:`reliqa.surfaces`, batch scoring :mod:`reliqa.batch`. Submodules are
imported on use (``from reliqa.evaluation.correlation import srcc``) so that importing this
package stays cheap.
"""
