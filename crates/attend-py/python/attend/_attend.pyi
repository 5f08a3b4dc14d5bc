"""Type stubs of the native module ``attend._attend`` (the binding over
attend's Rust library). Arrays are contiguous; series come as one float32
buffer with their lengths, each series channel-major."""

from typing import Any, Callable

import numpy as np
import numpy.typing as npt

__version__: str

class AttendError(ValueError): ...

Progress = Callable[[str], None] | None

def default_settings(kind: str) -> str: ...
def adaptive_keys() -> list[str]: ...
def set_precision(name: str) -> None: ...
def get_precision() -> tuple[str, str]: ...
def default_threads() -> int: ...
def model_kind(dir: str) -> str: ...
def load(dir: str) -> SequenceModelHandle | GraphModelHandle | TaggerHandle: ...
def from_files(files: dict[str, bytes]) -> SequenceModelHandle | GraphModelHandle | TaggerHandle: ...
def fit_sequence(
    values: npt.NDArray[np.float32],
    lengths: npt.NDArray[np.int64],
    dims: int,
    labels: npt.NDArray[np.int64],
    classes: list[str],
    per_vector: bool,
    settings_json: str,
    given: list[str],
    threads: int | None,
    progress: Progress = None,
) -> tuple[SequenceModelHandle, str]: ...
def fit_graph(
    features: npt.NDArray[np.float32],
    edge_index: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    train: list[int],
    val: list[int],
    test: list[int],
    settings_json: str,
    threads: int | None,
    progress: Progress = None,
) -> tuple[GraphModelHandle, str]: ...
def fit_tagger(
    train: str,
    dev: str | None,
    dev_fraction: float | None,
    out: str,
    settings_json: str,
    segmenter_json: str | None,
    threads: int | None,
    progress: Progress = None,
) -> tuple[TaggerHandle, str]: ...
def read_series(path: str) -> tuple[npt.NDArray[np.float32], list[int], int, list[str] | None]: ...
def read_graph(
    dir: str,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64], list[int], list[int], list[int]]: ...

class SequenceModelHandle:
    classes: list[str]
    per_vector: bool
    dims: int
    settings_json: str
    def predict(
        self, values: npt.NDArray[np.float32], lengths: npt.NDArray[np.int64], dims: int, threads: int | None
    ) -> npt.NDArray[np.int64]: ...
    def predict_proba(
        self, values: npt.NDArray[np.float32], lengths: npt.NDArray[np.int64], dims: int, threads: int | None
    ) -> npt.NDArray[np.float32]: ...
    def attention(
        self, values: npt.NDArray[np.float32], lengths: npt.NDArray[np.int64], dims: int, threads: int | None
    ) -> tuple[list[npt.NDArray[np.float32]], list[str]]: ...
    def save(self, dir: str) -> None: ...
    def __reduce__(self) -> tuple[Any, tuple[dict[str, bytes]]]: ...

class GraphModelHandle:
    classes: int
    feature_dim: int
    settings_json: str
    def predict_proba(
        self, features: npt.NDArray[np.float32], edge_index: npt.NDArray[np.int64], threads: int | None
    ) -> npt.NDArray[np.float32]: ...
    def attention(
        self, features: npt.NDArray[np.float32], edge_index: npt.NDArray[np.int64], threads: int | None
    ) -> tuple[npt.NDArray[np.int64], list[npt.NDArray[np.float32]]]: ...
    def save(self, dir: str) -> None: ...
    def __reduce__(self) -> tuple[Any, tuple[dict[str, bytes]]]: ...

class TaggerHandle:
    has_segmenter: bool
    settings_json: str
    def tag_text(self, text: str, threads: int | None) -> str: ...
    def tag_text_conllu(self, text: str, threads: int | None) -> str: ...
    def tag_documents(
        self, docs: list[tuple[str, bytes]], threads: int | None, max_token_chars: int | None = None, records: bool = False
    ) -> list[tuple[str | None, int, int, str | None]]: ...
    def tag_conllu(self, conllu_text: str, threads: int | None) -> str: ...
    def evaluate(self, path: str, raw_text: bool, threads: int | None) -> str: ...
    def attention(self, words: list[str], threads: int | None) -> tuple[list[npt.NDArray[np.float32]], list[str]]: ...
    def save(self, dir: str) -> None: ...
    def __reduce__(self) -> tuple[Any, tuple[dict[str, bytes]]]: ...
