"""Caption metrics: PTB tokenisation, METEOR and CIDEr-D from ``pycocoevalcap`` 1.2, called directly.

``COCOEvalCap.evaluate()`` is never used: it builds SPICE first, which downloads Stanford CoreNLP
and crashes offline. Instead this module does what it does for the two metrics we report:
tokenise references and candidates with the PTB tokenizer, then ``Meteor().compute_score`` (the
corpus-level score the jar reports) and ``Cider().compute_score`` (CIDEr-D, IDF over the evaluated
references). Callers multiply by 100.

**PTB tokenizer.** pycocoevalcap's ``PTBTokenizer`` writes its temporary file into its own package
folder, which fails when site-packages is read-only. :func:`ptb_tokenize` replicates it exactly
(same jar, same flags ``-preserveLines -lowerCase``, same punctuation removal, same line pairing)
but writes the temporary file into a temporary directory it owns. One deliberate difference: the
reference turns only "\n" into a space, while the Java lexer also ends lines at "\r", U+2028,
U+2029, VT and FF, which silently shifts every later caption onto the wrong image; we turn those
into spaces too, and check that the tokenizer returned one line per caption.

**METEOR.** Starting ``Meteor()`` launches a JVM and loads its paraphrase tables (about 10 s), so
one scorer is created lazily per process and reused (:func:`get_meteor`).

**Without Java** (``use_java=False``): METEOR is not computed and tokenisation falls back to
:func:`simple_tokenize`, a documented approximation of the PTB tokenizer. CIDEr from it is close to,
but not guaranteed equal to, the PTB-based value.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# the same list as pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS
PUNCTUATIONS = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                ".", "?", "!", ",", ":", "-", "--", "...", ";"]

_METEOR: Any = None
_METEOR_LOCK = threading.Lock()


class JavaNotFoundError(RuntimeError):
    """Java is needed (METEOR, PTB tokenizer) but is not on PATH."""


def require_java() -> str:
    """Path of the ``java`` executable, or a clear error."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "Java was not found on PATH. METEOR and the PTB tokenizer of pycocoevalcap run on a JVM: install a "
            "Java runtime (e.g. `apt-get install default-jre-headless`), or pass --no-java (use_java=False) to "
            "compute every metric except METEOR, with a simple tokenizer instead of PTB.")
    return java


def _ptb_jar() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer

    jar = Path(ptbtokenizer.__file__).resolve().parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    if not jar.is_file():
        raise FileNotFoundError(f"the Stanford CoreNLP jar of pycocoevalcap is missing: {jar}")
    return jar


# characters the Java PTB lexer treats as line ends (besides "\n")
_LINE_BREAKS = re.compile("[\r\u2028\u2029\x0b\x0c]")


def _one_line(caption: str) -> str:
    """The reference replaces only "\n"; other line-break characters would silently shift every later
    caption onto the wrong image, so they become spaces too (no effect on captions without them)."""
    return _LINE_BREAKS.sub(" ", caption.replace("\n", " "))


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's ``PTBTokenizer.tokenize`` with the temporary file outside site-packages.

    Args:
        captions: image key -> list of caption strings (the reference takes ``[{"caption": s}]``).

    Returns:
        image key -> list of tokenised, lower-cased captions without punctuation tokens.
    """
    java = require_java()
    keys = [k for k, v in captions.items() for _ in range(len(v))]
    sentences = "\n".join(_one_line(c) for v in captions.values() for c in v)
    with tempfile.TemporaryDirectory(prefix="clvnet-ptb-") as tmp:
        path = Path(tmp) / "captions.txt"
        path.write_bytes(sentences.encode())
        cmd = [java, "-cp", str(_ptb_jar()), "edu.stanford.nlp.process.PTBTokenizer",
               "-preserveLines", "-lowerCase", path.name]
        proc = subprocess.run(cmd, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                              check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the PTB tokenizer failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
    lines = proc.stdout.decode().split("\n")
    if not (len(keys) <= len(lines) <= len(keys) + 1) or (len(lines) > len(keys) and lines[-1].strip()):
        raise RuntimeError(f"the PTB tokenizer returned {len(lines)} lines for {len(keys)} captions; "
                           "captions and tokens would be misaligned")
    out: dict[str, list[str]] = {}
    for k, line in zip(keys, lines):
        out.setdefault(k, []).append(" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS))
    for k in captions:  # a key with an empty caption list never reaches the tokenizer
        out.setdefault(k, [])
    return out


_SIMPLE_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|n't|'[a-z]+|[^\sa-z0-9]")


def simple_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Java-free approximation of :func:`ptb_tokenize`.

    Lower-cases, splits into words (letters/digits, keeping inner hyphens and apostrophes) and
    single punctuation characters, then drops the PTB punctuation tokens and any other token made
    only of punctuation. Contractions and quotes are not split as PTB does, so CIDEr may differ
    slightly from the PTB-based value.
    """
    out: dict[str, list[str]] = {}
    for k, caps in captions.items():
        toks = []
        for c in caps:
            words = _SIMPLE_TOKEN.findall(c.replace("\n", " ").lower())
            toks.append(" ".join(w for w in words if w not in PUNCTUATIONS and re.search(r"[a-z0-9]", w)))
        out[k] = toks
    return out


def get_meteor() -> Any:
    """The process-wide METEOR scorer (one JVM, started on first use, restarted if it died)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            require_java()
            from pycocoevalcap.meteor.meteor import Meteor

            _METEOR = Meteor()
        return _METEOR


def meteor_score(gts: Mapping[str, list[str]], res: Mapping[str, list[str]]) -> float:
    """Corpus-level METEOR (x1) of tokenised candidates ``res`` (one each) against references ``gts``."""
    scorer = get_meteor()
    try:
        score, _ = scorer.compute_score(dict(gts), dict(res))
    except (ValueError, BrokenPipeError, OSError) as exc:
        err = b""
        if scorer.meteor_p.poll() is not None and scorer.meteor_p.stderr is not None:
            err = scorer.meteor_p.stderr.read()
        if scorer.lock.locked():
            scorer.lock.release()
        raise RuntimeError(f"the METEOR jar failed: {exc}; {err.decode(errors='replace')[-2000:]}") from exc
    return float(score)


def cider_score(gts: Mapping[str, list[str]], res: Mapping[str, list[str]]) -> float:
    """CIDEr-D (x1) as ``pycocoevalcap.cider.Cider().compute_score``; IDF over these references."""
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score(dict(gts), dict(res))
    return float(score)


def caption_scores(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str],
                   use_java: bool = True) -> dict[str, float | None]:
    """METEOR and CIDEr (x1) of one candidate per image against its references.

    Args:
        references: image key -> reference captions (at least one each).
        candidates: image key -> predicted caption (same keys, empty string for a missing prediction).
        use_java: False skips METEOR and uses :func:`simple_tokenize`.

    Returns:
        ``{"METEOR": float | None, "CIDEr": float, "tokenizer": "ptb" | "simple"}``.
    """
    if set(references) != set(candidates):
        raise ValueError("references and candidates must cover the same images")
    empty = [k for k, v in references.items() if not v]
    if empty:
        raise ValueError(f"image {empty[0]!r} has no reference caption")
    res_in = {k: [candidates[k]] for k in references}
    tok = ptb_tokenize if use_java else simple_tokenize
    gts = tok(references)
    res = tok(res_in)
    out: dict[str, Any] = {"tokenizer": "ptb" if use_java else "simple"}
    out["CIDEr"] = cider_score(gts, res) if gts else 0.0
    out["METEOR"] = meteor_score(gts, res) if (use_java and gts) else None
    return out
