"""Archive-scale prediction: many rasters x many boxes -> one GeoPackage, sharded across ranks, resumable.

The pieces, in the order a run uses them:

- :mod:`.sources`: ``--images`` as a folder, a glob, a list file or a STAC catalogue -> raster paths;
- :mod:`.plan`: each raster's georeferencing, and the boxes to predict per raster (``--grid``, ``--boxes``);
- :mod:`.vector`: boxes from a vector layer (``--vector``), matched to the rasters, edge policy applied;
- :mod:`.shard`: ranks under ``torchrun`` / ``accelerate launch``, rasters assigned to ranks;
- :mod:`.rows`: one prediction -> one ``boxes`` row and its ``phrases`` rows, in the output CRS;
- :mod:`.parts`: per-rank append-only part files, which are also the manifest of done (raster, box) pairs;
- :mod:`.layers`: merge the parts into ``predictions.gpkg`` (and GeoParquet);
- :mod:`.runner`: the run itself.

The output contract is in docs/design.md §8 ("Archive output").
"""
