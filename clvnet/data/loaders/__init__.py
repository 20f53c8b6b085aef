"""Loaders that turn public GCG datasets into :class:`~clvnet.data.record.GCGRecord` lists.

* :func:`load_geopixeld` -- GeoPixelD (per-image JSON with polygons or RLE, or the training list);
* :func:`load_grandf` / :func:`load_glamm_coco_gt` -- GranD-f / GLaMM GCG annotations and the
  COCO-style ground-truth pair used by GLaMM's evaluation.

Loaders return records with absolute image paths and validated spans and masks.
"""

from clvnet.data.loaders.geopixeld import load_geopixeld
from clvnet.data.loaders.grandf import load_glamm_coco_gt, load_grandf

__all__ = ["load_geopixeld", "load_glamm_coco_gt", "load_grandf"]
