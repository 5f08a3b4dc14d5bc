"""Part-of-speech tagging of raw text or CoNLL-U: UPOS, XPOS and FEATS."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import _attend
from ._base import BaseEstimator, check_fitted, estimator_settings, params_of, progress, seed, settings_json, threads

MODEL_KEYS = (
    "encoder", "d_model", "heads", "layers", "ff_dim", "dropout", "attention_dropout", "position", "max_positions",
    "window", "attention_kernel", "word_dim", "char_dim", "char_filters", "char_kernel", "max_word_chars",
)  # fmt: skip
TRAIN_KEYS = (
    "epochs", "max_minutes", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "beta1", "beta2", "clip",
    "batch_tokens", "label_smoothing", "word_dropout", "patience",
)  # fmt: skip


@dataclass
class Word:
    """A syntactic word with its predicted tags (``xpos`` and ``feats``
    are None when the model does not predict them)."""

    form: str
    upos: str
    xpos: str | None = None
    feats: str | None = None


@dataclass
class Token:
    """A surface token; a multiword token (English "don't") has several words."""

    form: str
    space_after: bool
    words: list[Word] = field(default_factory=list)

    @property
    def is_multiword(self) -> bool:
        return len(self.words) > 1


@dataclass
class Sentence:
    id: str
    text: str
    tokens: list[Token] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [w for t in self.tokens for w in t.words]


def _sentence(record: dict[str, Any]) -> Sentence:
    tokens = [
        Token(t["form"], t["space_after"], [Word(w["form"], w["upos"], w.get("xpos"), w.get("feats")) for w in t["words"]])
        for t in record["tokens"]
    ]
    return Sentence(str(record["id"]), record["text"], tokens)


class Tagger(BaseEstimator):
    """A part-of-speech tagger trained from scratch on CoNLL-U files, with a
    raw-text segmenter (sentences, tokens, multiword tokens), as ``attend
    train tagger`` trains it; or one the CLI trained, by :func:`attend.load`.

    Parameters
    ----------
    encoder, d_model, heads, layers, ff_dim, dropout, attention_dropout, position, max_positions, window, attention_kernel, word_dim, char_dim, char_filters, char_kernel, max_word_chars
        The model, as ``attend train tagger`` flags of the same names.
    epochs, max_minutes, lr, warmup_steps, min_lr_ratio, weight_decay, beta1, beta2, clip, batch_tokens, label_smoothing, word_dropout, patience
        Training, as the CLI's flags.
    segmenter : bool
        Also train the raw-text segmenter (needed to tag raw text).
    segmenter_settings : dict or None
        Settings of the segmenter laid over its defaults, as the settings
        file's ``[segmenter.model]`` and ``[segmenter.train]`` tables:
        ``{"model": {...}, "train": {...}}``.
    random_state : int, RandomState or None
    n_threads : int or None
    verbose : int
    """

    def __init__(
        self,
        *,
        encoder: str = "attention",
        d_model: int = 256,
        heads: int = 8,
        layers: int = 2,
        ff_dim: int = 512,
        dropout: float = 0.2,
        attention_dropout: float = 0.1,
        position: str = "rope",
        max_positions: int = 512,
        window: int | None = None,
        attention_kernel: str = "fused",
        word_dim: int = 128,
        char_dim: int = 48,
        char_filters: int = 192,
        char_kernel: int = 3,
        max_word_chars: int = 20,
        epochs: int = 10,
        max_minutes: float | None = None,
        lr: float = 0.001,
        warmup_steps: int = 300,
        min_lr_ratio: float = 0.02,
        weight_decay: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.98,
        clip: float = 1.0,
        batch_tokens: int = 1024,
        label_smoothing: float = 0.0,
        word_dropout: float = 0.25,
        patience: int | None = None,
        segmenter: bool = True,
        segmenter_settings: dict[str, dict[str, Any]] | None = None,
        random_state: Any = 42,
        n_threads: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.encoder = encoder
        self.d_model = d_model
        self.heads = heads
        self.layers = layers
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.position = position
        self.max_positions = max_positions
        self.window = window
        self.attention_kernel = attention_kernel
        self.word_dim = word_dim
        self.char_dim = char_dim
        self.char_filters = char_filters
        self.char_kernel = char_kernel
        self.max_word_chars = max_word_chars
        self.epochs = epochs
        self.max_minutes = max_minutes
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.min_lr_ratio = min_lr_ratio
        self.weight_decay = weight_decay
        self.beta1 = beta1
        self.beta2 = beta2
        self.clip = clip
        self.batch_tokens = batch_tokens
        self.label_smoothing = label_smoothing
        self.word_dropout = word_dropout
        self.patience = patience
        self.segmenter = segmenter
        self.segmenter_settings = segmenter_settings
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    def fit(self, train: str | os.PathLike[str], dev: str | os.PathLike[str] | None = None, *, dev_fraction: float | None = None, out: str | os.PathLike[str] | None = None) -> "Tagger":
        """Trains on the CoNLL-U file ``train``, choosing the epoch on
        ``dev`` (or on the last ``dev_fraction`` of ``train``); with
        ``out``, the model directory is written there as the CLI writes it
        (with ``resume/`` to continue an interrupted run)."""
        s = seed(self.random_state)
        seg = None
        if self.segmenter:
            given = self.segmenter_settings or {}
            unknown = set(given) - {"model", "train"}
            if unknown:
                raise ValueError(f"segmenter_settings takes the tables 'model' and 'train', got {sorted(unknown)}")
            seg_train = {"seed": s, **given.get("train", {})}
            seg = settings_json("segmenter", dict(given.get("model", {})), seg_train)
        if dev is None and dev_fraction is None:
            raise ValueError("give a dev file (dev=...) or a share of the training file to hold out (dev_fraction=0.1)")
        with tempfile.TemporaryDirectory(prefix="attend-tagger-") as tmp:
            target = os.fspath(out) if out is not None else os.path.join(tmp, "model")
            handle, report = _attend.fit_tagger(
                os.fspath(train), None if dev is None else os.fspath(dev), dev_fraction, target,
                estimator_settings(self, "tagger", (MODEL_KEYS, TRAIN_KEYS), {}, s), seg, threads(self.n_threads), progress(self),
            )  # fmt: skip
        self.handle_ = handle
        self.fit_report_ = json.loads(report)
        return self

    def tag(self, text: str | list[str], *, conllu: bool = False) -> Any:
        """Raw text in (paragraphs end at blank lines): a list of
        :class:`Sentence` (tokens, multiword tokens, words with UPOS, XPOS,
        FEATS), or with ``conllu=True`` the CoNLL-U ``attend tag`` writes.
        A list of strings gives one result per string."""
        handle = check_fitted(self)
        if isinstance(text, list):
            return [self.tag(t, conllu=conllu) for t in text]
        if not isinstance(text, str):
            raise TypeError(f"text must be a str or a list of str, got {type(text).__name__}")
        n = threads(self.n_threads)
        if conllu:
            return handle.tag_text_conllu(text, n)
        return [_sentence(r) for r in json.loads(handle.tag_text(text, n))]

    def tag_conllu(self, conllu: str) -> str:
        """CoNLL-U in (its tokens and words as given), tagged CoNLL-U out."""
        return check_fitted(self).tag_conllu(conllu, threads(self.n_threads))

    def evaluate(self, path: str | os.PathLike[str], *, raw_text: bool = False) -> dict[str, Any]:
        """The CoNLL 2018 metrics (``Tokens``, ``Sentences``, ``Words``,
        ``UPOS``, ``XPOS``, ``UFeats``, ``AllTags``, ...; each with
        ``precision``, ``recall``, ``f1``, ``aligned_accuracy``) against the
        gold CoNLL-U file at ``path``: tagging its words, or with
        ``raw_text=True`` segmenting and tagging its raw text."""
        return json.loads(check_fitted(self).evaluate(os.fspath(path), raw_text, threads(self.n_threads)))

    def attention(self, words: list[str]) -> dict[str, Any]:
        """Attention over one sentence's words: ``{"layers": [array (heads,
        words, words) per layer], "upos": [predicted tag per word]}``."""
        layers, tags = check_fitted(self).attention(list(words), threads(self.n_threads))
        return {"layers": layers, "upos": tags}

    @property
    def has_segmenter(self) -> bool:
        return bool(check_fitted(self).has_segmenter)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the model directory ``attend tag --model`` reads (with its segmenter)."""
        check_fitted(self).save(os.fspath(path))

    @classmethod
    def _from_handle(cls, handle: Any) -> "Tagger":
        params = params_of(handle.settings_json, (MODEL_KEYS, TRAIN_KEYS), {})
        est = cls(segmenter=bool(handle.has_segmenter), **params)
        est.handle_ = handle
        est.fit_report_ = None
        return est

