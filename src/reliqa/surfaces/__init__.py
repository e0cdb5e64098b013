"""GMC surfaces: where along the quality scale a model ranks well (docs/gmc.md).

The entry point is :func:`reliqa.surfaces.gmc.gmc` (also ``reliqa.gmc``); beside it,
bottom-up: :mod:`~reliqa.surfaces.inputs` (score range, std, regulator weights, query points),
:mod:`~reliqa.surfaces.pairs` (the grouped pair sums), :mod:`~reliqa.surfaces.fit` (surface
fitting) and :mod:`~reliqa.surfaces.plot` (pictures).

The folder is not called ``gmc`` because ``reliqa.gmc`` is the public function: a subpackage
of that name would replace the function on ``reliqa`` as soon as it is imported.
Submodules are imported on use, so importing this package stays cheap.
"""
