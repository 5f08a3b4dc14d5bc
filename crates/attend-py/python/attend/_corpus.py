"""Raw-text documents to tagged output, shared by the Dask and Ray front
ends: what a document may be, how one that cannot be read becomes an
error, and how CoNLL-U numbered from 1 is numbered on."""

from __future__ import annotations

import os
import re
from typing import Any

from . import _cache
from ._base import check_fitted

#: A run of more characters than this without white space makes a
#: document an error record (no token is that long: a binary blob or a
#: corrupt line); URLs are far shorter.
MAX_TOKEN_CHARS = 4096
#: The fields of a word record, in order.
RECORD_COLUMNS = ("doc", "sentence", "token", "token_form", "word", "form", "upos", "xpos", "feats", "error")

# How in-memory documents are named in errors until their number is known.
DOC = "<document>"
_NUMBERED = re.compile(r"^# (sent_id = |newpar id = p)(\d+)$", re.MULTILINE)


def document(item: Any) -> tuple[str, bytes | None, str | None]:
    """``(label, UTF-8 bytes, error)`` of one element."""
    if isinstance(item, str):
        try:
            return DOC, item.encode("utf-8"), None
        except UnicodeEncodeError as e:
            return DOC, None, f"{DOC}: not valid text ({e.reason} at character {e.start + 1})"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return DOC, bytes(item), None
    if isinstance(item, os.PathLike):
        path = os.fspath(item)
        try:
            with open(path, "rb") as f:
                return str(path), f.read(), None
        except OSError as e:
            return str(path), None, f"{path}: {e.strerror or e}"
    if item is None or (isinstance(item, float) and item != item):
        return DOC, None, f"{DOC}: no text (a missing value)"
    return DOC, None, f"{DOC}: expected a str, bytes or path, got {type(item).__name__}"


def tagger(model: str) -> Any:
    est = _cache.model(model)
    handle = check_fitted(est)
    if not hasattr(handle, "tag_documents"):
        raise TypeError(f"{model} holds a {type(est).__name__}, not a tagger")
    if not handle.has_segmenter:
        raise ValueError(f"{model} has no segmenter/ to read raw text (attend train tagger trains one)")
    return handle


def tag_documents(items: Any, model: str, n_threads: int | None, max_token_chars: int | None, records: bool) -> list[tuple[Any, int, int, Any]]:
    """Per element of ``items`` ``(output, sentences, paragraphs, error)``,
    each tagged as if alone (numbered from 1), with the tagger in ``model``
    (loaded once per process); an element that cannot be read has only
    its error."""
    docs = [document(x) for x in items]
    readable = [(label, b) for label, b, err in docs if err is None]
    tagged = iter(tagger(model).tag_documents(readable, n_threads, max_token_chars, records) if readable else [])
    return [next(tagged) if err is None else (None, 0, 0, err) for _, _, err in docs]


def renumber(conllu: str, sentences: int, paragraphs: int) -> str:
    """A document's CoNLL-U (numbered from 1) numbered on after
    ``sentences`` sentences and ``paragraphs`` paragraphs; ``# newdoc``
    stays only on the very first paragraph."""
    if sentences == 0 and paragraphs == 0:
        return conllu
    if paragraphs:
        conllu = conllu.replace("# newdoc\n", "", 1)
    return _NUMBERED.sub(lambda m: f"# {m[1]}{int(m[2]) + (sentences if m[1][0] == 's' else paragraphs)}", conllu)


def error_record(key: Any, error: str) -> dict[str, Any]:
    """The one record of a document that could not be tagged."""
    return {**dict.fromkeys(RECORD_COLUMNS), "doc": key, "error": error}


def word_records(key: Any, sentences: list[dict[str, Any]], before: int) -> list[dict[str, Any]]:
    """One record per word of sentence records (numbered on after ``before``)."""
    rows = []
    for k, s in enumerate(sentences):
        word = 0
        for t, token in enumerate(s["tokens"], start=1):
            for w in token["words"]:
                word += 1
                rows.append({
                    "doc": key, "sentence": before + k + 1, "token": t, "token_form": token["form"], "word": word,
                    "form": w["form"], "upos": w["upos"], "xpos": w.get("xpos"), "feats": w.get("feats"), "error": None,
                })  # fmt: skip
    return rows
