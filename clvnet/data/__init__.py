"""GCG data layer: records, RLE helpers, loaders for real datasets, SynthRS and the training dataset."""

from clvnet.data.record import (
    DataError,
    GCGRecord,
    Phrase,
    from_tagged,
    iter_jsonl,
    read_jsonl,
    strip_tags,
    to_tagged,
    validate,
    write_jsonl,
)

__all__ = [
    "DataError",
    "GCGRecord",
    "Phrase",
    "from_tagged",
    "iter_jsonl",
    "read_jsonl",
    "strip_tags",
    "to_tagged",
    "validate",
    "write_jsonl",
]
