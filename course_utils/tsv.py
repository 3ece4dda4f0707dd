"""Reading a real parallel corpus: tab-separated ``source<TAB>target`` lines.

The bridge from the synthetic corpus to real data such as the Tatoeba
English-French pairs; no notebook or test downloads anything. Introduced in notebook 00.
"""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from course_utils.pairs import Pair

_PUNCTUATION = ".,!?;:\"«»¿¡"


def load_tsv_pairs(source: str | Path, cache_dir: str | Path | None = None,
                   sha256: str | None = None, max_pairs: int | None = None,
                   lowercase: bool = True) -> list[Pair]:
    """Load a tab-separated parallel corpus (``source<TAB>target[<TAB>...]`` per line).

    ``source`` is a local path or an http(s) URL; a URL is downloaded once into
    ``cache_dir`` (default ``~/.cache/attention-course``) under a name made from a
    hash of the whole URL (two corpora both called ``train.tsv`` do not collide) and
    reused. With ``sha256`` the file's checksum is verified: a cached download that
    does not match is fetched again once, and a mismatch after that (or of a local
    file) raises ValueError. A UTF-8 byte-order mark is dropped; blank lines are
    skipped; a line with fewer than two columns, or an empty source or target
    column, raises ValueError naming ``file:line``. ``max_pairs`` (>= 0) stops after
    that many pairs (0 gives none). Tokenisation is whitespace with punctuation split
    off. Introduced in notebook 00.
    """
    if max_pairs is not None and (not isinstance(max_pairs, int) or max_pairs < 0):
        raise ValueError(f"max_pairs: expected None or an int >= 0, got {max_pairs!r}")
    is_url = str(source).startswith(("http://", "https://"))
    path = _fetch(str(source), cache_dir, sha256) if is_url else Path(source)
    if sha256 is not None:
        digest = _sha256(path)
        if digest != sha256.lower():
            raise ValueError(f"sha256 of {path}: expected {sha256}, got {digest}")
    pairs: list[Pair] = []
    if max_pairs == 0:
        return pairs
    with open(path, encoding="utf-8-sig") as handle:  # -sig: drops a byte-order mark
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line[:60]!r}")
            src, tgt = _tokenize(cols[0], lowercase), _tokenize(cols[1], lowercase)
            for column, tokens in (("source", src), ("target", tgt)):
                if not tokens:
                    raise ValueError(f"{path}:{number}: the {column} column is empty, got {line[:60]!r}")
            pairs.append(Pair(src, tgt))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


def _tokenize(text: str, lowercase: bool) -> tuple[str, ...]:
    text = text.lower() if lowercase else text
    out = []
    for word in text.split():
        core = word.strip(_PUNCTUATION)
        lead, trail = word[: word.find(core)] if core else word, word[word.find(core) + len(core):] if core else ""
        out += list(lead) + ([core] if core else []) + list(trail)
    return tuple(out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(url: str, cache_dir: str | Path | None = None) -> Path:
    """Where :func:`load_tsv_pairs` keeps the download of ``url``: a hash of the whole URL
    and its last path component (for a readable name)."""
    cache = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "attention-course"
    name = url.rstrip("/").rsplit("/", 1)[-1] or "corpus"
    return cache / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def _fetch(url: str, cache_dir: str | Path | None, sha256: str | None) -> Path:
    target = cache_path(url, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256 is not None and _sha256(target) != sha256.lower():
        target.unlink()  # a corrupt or outdated download: fetch it again
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        urllib.request.urlretrieve(url, tmp)  # noqa: S310 - only called on explicit request
        tmp.replace(target)
    return target
