"""SynthRS: procedural top-down aerial scenes with exact masks and grounded captions (design §6).

Public API: :func:`generate_scene` (one scene in memory), :func:`generate_split` (PNG files plus a
``records.jsonl`` of GCG records) and :func:`split_seed` (the disjoint per-split seed spaces).
"""

from clvnet.data.synth.generator import SYNTHRS_VERSION, generate_scene, generate_split, split_seed
from clvnet.data.synth.objects import CLASSES, TWINS, sample_appearance

__all__ = ["CLASSES", "SYNTHRS_VERSION", "TWINS", "generate_scene", "generate_split", "sample_appearance", "split_seed"]
