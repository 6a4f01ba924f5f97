"""FittedModule: the fitted-module machinery shared by processors and score normalisers.

Both :class:`xcm_debias.processors.PostProcessor` (embedding level) and
:class:`xcm_debias.scoring.ScoreNormalizer` (score level) follow one contract (scikit-learn
estimators + concept-erasure):

* constructor arguments are stored untouched as same-named attributes and read back by
  ``get_params()`` (JSON-able), so a module is re-creatable from its config; ``set_params``
  and ``sklearn.base.clone`` (through ``__sklearn_clone__``) follow scikit-learn;
* fitted tensors live in registered buffers (``state_dict()`` is the whole fitted model), set
  with ``set_state``; ``fitted_flag`` says whether ``fit`` ran; small JSON metadata rides in
  ``fitted_meta``;
* ``to_config()`` / ``from_config()`` describe a module as ``{"class", "params",
  "fitted_meta"}``; each family keeps its own ``registry`` of class names (a processor and a
  normaliser may share a name), filled when a subclass is defined;
* ``save(path)`` writes one safetensors file whose header metadata holds
  ``{"format": FORMAT_VERSION, "config": ...}`` under the key ``"xcm_debias"``: no pickle;
  ``load(path)`` rebuilds the module.

File format: version 2 adds, beside the config, a ``"tensors"`` manifest (name -> dtype and
shape of every saved tensor) and a SHA-256 content hash of the header and every tensor's bytes
under the metadata key ``"xcm_debias.sha256"``; loading recomputes the hash and checks the
manifest, so a damaged file (flipped bytes, a missing tensor, a changed shape) is refused
before anything is built from it. Version 1 (no hash) still loads. A file whose ``format`` is
newer than this code's ``FORMAT_VERSION`` is refused with an explicit error rather than misread.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

_METADATA_KEY = "xcm_debias"
_HASH_KEY = "xcm_debias.sha256"
FORMAT_VERSION = 2

_Module = TypeVar("_Module", bound="FittedModule")


class NotFittedError(RuntimeError):
    """Raised when a processor or scorer is used before ``fit``."""


class FittedModule(torch.nn.Module):
    """Base of every fitted module (see the module docstring).

    A family base (``PostProcessor``, ``ScoreNormalizer``) defines its own ``registry`` dict in
    its class body; every subclass defined below it is registered there by class name. The
    family sets ``_kind`` (a word for messages) and ``_fit_hint`` (how to fit, for the
    not-fitted error).
    """

    _kind: ClassVar[str] = "module"
    _fit_hint: ClassVar[str] = "call fit first"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if "registry" in base.__dict__:
                base.__dict__["registry"][cls.__name__] = cls
                break

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted_flag", torch.tensor(False))
        self.fitted_meta: dict[str, Any] = {}

    # ------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, read back from same-named attributes (JSON-able).

        ``deep`` is scikit-learn's flag; a module has no nested estimators (a ``Chain`` lists
        its steps' parameters when ``deep``), so it changes nothing here.
        """
        return constructor_params(self)

    def set_params(self: _Module, **params: Any) -> _Module:
        """Change constructor arguments by name (scikit-learn's contract); returns ``self``.

        The module is rebuilt from its parameters with these replaced, as ``from_config`` would,
        so it is **unfitted** afterwards (fitted state made with other parameters is dropped).
        """
        current = self.get_params(deep=False)
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ValueError(
                f"set_params: expected parameters of {type(self).__name__} among "
                f"{sorted(current)}, got {unknown}"
            )
        fresh = type(self)(**{**current, **params})
        self.__dict__.clear()  # no attribute fitted under the old parameters survives
        self.__dict__.update(fresh.__dict__)
        return self

    def __sklearn_clone__(self: _Module) -> _Module:
        """``sklearn.base.clone``: an unfitted module with the same parameters."""
        return self.from_config(unfitted_config(self.to_config()))  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted_flag)

    def check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__}: not fitted; {self._fit_hint}")

    def set_state(self, name: str, value: torch.Tensor) -> None:
        """Store a fitted tensor as a buffer (replacing any earlier one)."""
        if name in self._buffers:
            del self._buffers[name]
        # contiguous, as save() writes it: a reloaded buffer then computes bit-identically
        self.register_buffer(name, value.detach().clone(memory_format=torch.contiguous_format))

    # ------------------------------------------------------------ save/load
    def to_config(self) -> dict[str, Any]:
        """JSON-able description: class, constructor params and fitted metadata."""
        return {
            "class": type(self).__name__,
            "params": self.get_params(deep=False),
            "fitted_meta": _jsonable(self.fitted_meta),
        }

    @classmethod
    def _from_registry(
        cls: type[_Module], config: dict[str, Any], fitted_meta: bool = True
    ) -> _Module:
        """An unfitted instance of the registered class ``config["class"]`` of this family."""
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        registry: dict[str, type[_Module]] = cls.registry  # type: ignore[attr-defined]
        name = config.get("class")
        if name not in registry:
            raise ValueError(
                f"config: unknown {cls._kind} class {name!r}; known: {sorted(registry)}"
            )
        module = registry[name](**config.get("params", {}))
        if fitted_meta:
            module.fitted_meta = dict(config.get("fitted_meta", {}))
        return module

    def save(self, path: str | Path) -> Path:
        """Write fitted buffers and the JSON config to one ``.safetensors`` file (no pickle)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        return write_safetensors(path, tensors, self.to_config())

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Rebuild a module of this family saved with ``save`` (buffers restored)."""
        config, tensors = read_checked(path)
        if config is None:
            raise ValueError(
                f"{path}: not an xcm_debias {cls._kind} file (no '{_METADATA_KEY}' metadata)"
            )
        module = cls.from_config(config)  # type: ignore[attr-defined]
        restore_buffers(module, tensors)
        return module


def content_hash(header: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a header string and every tensor (name, dtype, shape, bytes; sorted by name)."""
    digest = hashlib.sha256(header.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"\x00{name}|{t.dtype}|{tuple(t.shape)}\x00".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], config: Any) -> Path:
    """Write ``tensors`` and the checksummed header (see the module docstring) to ``path``.

    The file is written atomically (:func:`xcm_debias.atomic.atomic_path`): a failed write
    leaves any previous file at ``path`` intact.
    """
    from xcm_debias.atomic import atomic_path

    path = Path(path)
    manifest = {k: [str(v.dtype), list(v.shape)] for k, v in sorted(tensors.items())}
    header = json.dumps({"format": FORMAT_VERSION, "config": config, "tensors": manifest})
    meta = {_METADATA_KEY: header, _HASH_KEY: content_hash(header, tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_config(path: str | Path) -> Any:
    """The ``config`` stored in an xcm_debias safetensors header, or None when it has none.

    The whole file is verified first (:func:`read_checked`). Raises FileNotFoundError for a
    missing file and ValueError for a damaged file or a format newer than ``FORMAT_VERSION``.
    """
    return read_checked(path)[0]


def read_checked(path: str | Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(config, tensors)`` of an xcm_debias safetensors file, verified.

    From format 2 on, the tensors must match the header's manifest (names, dtypes, shapes)
    and the content hash must match, else ValueError says the file is damaged. ``config`` is
    None for a safetensors file without xcm_debias metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file: {str(path)!r}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise ValueError(f"{path}: not a readable .safetensors file ({exc})") from None
    header = metadata.get(_METADATA_KEY)
    if header is None:
        return None, tensors
    try:
        content = json.loads(header)
    except json.JSONDecodeError:
        raise ValueError(f"{path}: damaged xcm_debias header (not JSON)") from None
    if not isinstance(content, dict):
        return None, tensors
    version = content.get("format", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: expected an xcm_debias file format <= {FORMAT_VERSION}, got {version!r} "
            "(written by a newer xcm_debias?)"
        )
    if version >= 2:
        _verify(path, header, content.get("tensors"), metadata.get(_HASH_KEY), tensors)
    return content.get("config"), tensors


def _verify(
    path: Path, header: str, manifest: Any, expected: str | None, tensors: dict[str, torch.Tensor]
) -> None:
    if not isinstance(manifest, dict) or expected is None:
        raise ValueError(f"{path}: damaged xcm_debias file (no tensor manifest or content hash)")
    missing = sorted(set(manifest) - set(tensors))
    unknown = sorted(set(tensors) - set(manifest))
    if missing or unknown:
        raise ValueError(
            f"{path}: damaged xcm_debias file: tensors missing {missing}, unexpected {unknown}"
        )
    for name, (dtype, shape) in manifest.items():
        t = tensors[name]
        if str(t.dtype) != dtype or list(t.shape) != list(shape):
            raise ValueError(
                f"{path}: damaged xcm_debias file: tensor {name!r} expected {dtype} "
                f"{tuple(shape)}, got {t.dtype} {tuple(t.shape)}"
            )
    if content_hash(header, tensors) != expected:
        raise ValueError(
            f"{path}: damaged xcm_debias file: content hash mismatch (the bytes changed since "
            "it was saved); refit or restore the file"
        )


def constructor_params(obj: object) -> dict[str, Any]:
    """Constructor arguments of ``obj``, read back from same-named attributes (JSON-able)."""
    params = {}
    for name, p in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[name] = _jsonable(getattr(obj, name))
    return params


def unfitted_config(config: Any) -> Any:
    """``config`` (from ``to_config``) without fitted metadata, at every level (chains' steps)."""
    if isinstance(config, dict):
        return {k: unfitted_config(v) for k, v in config.items() if k != "fitted_meta"}
    if isinstance(config, list):
        return [unfitted_config(v) for v in config]
    return config


def restore_buffers(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Register every tensor of a saved state dict as a buffer at its dotted path."""
    for key, value in state.items():
        owner_path, _, name = key.rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        if name in owner._buffers:
            del owner._buffers[name]
        # a fresh (allocator-aligned) copy, as set_state makes at fit: a tensor read in place
        # sits at an offset set by the file header's length, and BLAS may round differently
        # on less aligned rows, so a reloaded module would not compute bit-identically
        owner.register_buffer(name, value.clone())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in a processor's JSON config")
