"""Inference on images of any size: :class:`~clvnet.inference.predictor.Predictor` (used by the CLI and the demo),
raster reading (:mod:`.raster`), full-resolution masks (:mod:`.masks`), GeoJSON (:mod:`.geo`) and writers
(:mod:`.outputs`). Submodules are imported lazily; torch is only needed by the predictor.
"""
