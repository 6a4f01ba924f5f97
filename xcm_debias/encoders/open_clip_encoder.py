"""OpenCLIPEncoder: images and texts -> EmbeddingSet with any open_clip model.

Wraps ``open_clip.create_model_and_transforms`` and ``open_clip.get_tokenizer``
(Ilharco et al., *OpenCLIP*, 2021, https://github.com/mlfoundations/open_clip). Each output row
is ``f(x) / ‖f(x)‖₂`` with ``f`` the model's ``encode_image`` or ``encode_text``, computed in
eval mode without gradients, in batches, and returned as float32 on the CPU. The language of
each text is recorded in the set's ``language`` label; ``items``/``cultures``/``ids`` pass
through unchanged.

Weights: ``pretrained`` is an open_clip tag (``open_clip.list_pretrained_tags_by_model(name)``),
a local checkpoint file (``.bin``/``.pt``/``.pth``/``.safetensors``), or ``None`` (random
initialisation, with a warning). ``model_name`` may also be ``"hf-hub:org/repo"`` or
``"local-dir:/path"`` (weights come from there). Weights that cannot be fetched (offline,
missing from the cache, gated) raise :class:`WeightsUnavailableError` naming the model, the tag
and the two ways to provide them locally. When weights must be fetched, the hub is probed first
(one TCP connection, at most 1 s): unreachable, only the local cache is searched, so an offline
machine fails at once instead of retrying for about a minute. Models whose text tower or
tokenizer comes from Hugging Face (xlm-roberta, NLLB) need ``pip install 'xcm_debias[multilingual]'``.

Language-aware tokenizers (NLLB-CLIP's) need each text's source language: texts are tokenised
per language after ``tokenizer.set_language(code)``, with BCP-47 codes mapped to FLORES-200
codes by :data:`FLORES200_CODES` (extend or override with ``tokenizer_languages``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from xcm_debias._validation import as_label_array, check_positive_int, check_texts
from xcm_debias.data import EmbeddingSet
from xcm_debias.encoders._offline import offline_unless_reachable
from xcm_debias.encoders._rows import check_labels, languages_of, text_rows
from xcm_debias.language_codes import language_key

ImageInput = Image.Image | str | os.PathLike

PRECISIONS = ("fp32", "fp16", "bf16")
_INPUT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

#: BCP-47 -> FLORES-200 codes for the languages of XM3600 (36) and Multi30K (en, de, fr, cs),
#: used to set the source language of NLLB tokenizers. ``fil`` maps to Tagalog and ``quz``
#: (Cusco Quechua) to Ayacucho Quechua, the closest languages NLLB-200 covers.
FLORES200_CODES: dict[str, str] = {
    "ar": "arb_Arab",
    "bn": "ben_Beng",
    "cs": "ces_Latn",
    "da": "dan_Latn",
    "de": "deu_Latn",
    "el": "ell_Grek",
    "en": "eng_Latn",
    "es": "spa_Latn",
    "fa": "pes_Arab",
    "fi": "fin_Latn",
    "fil": "tgl_Latn",
    "fr": "fra_Latn",
    "he": "heb_Hebr",
    "hi": "hin_Deva",
    "hr": "hrv_Latn",
    "hu": "hun_Latn",
    "id": "ind_Latn",
    "it": "ita_Latn",
    "ja": "jpn_Jpan",
    "ko": "kor_Hang",
    "mi": "mri_Latn",
    "nl": "nld_Latn",
    "no": "nob_Latn",
    "pl": "pol_Latn",
    "pt": "por_Latn",
    "quz": "quy_Latn",
    "ro": "ron_Latn",
    "ru": "rus_Cyrl",
    "sv": "swe_Latn",
    "sw": "swh_Latn",
    "te": "tel_Telu",
    "th": "tha_Thai",
    "tr": "tur_Latn",
    "uk": "ukr_Cyrl",
    "vi": "vie_Latn",
    "zh": "zho_Hans",
}


class WeightsUnavailableError(RuntimeError):
    """The weights (or tokenizer files) of an open_clip model could not be fetched."""


class OpenCLIPEncoder:
    """Encode images and texts with an open_clip model into L2-normalised ``EmbeddingSet`` rows.

    Args:
        model_name: an architecture of ``open_clip.list_models()`` (e.g.
            ``"xlm-roberta-base-ViT-B-32"``), or ``"hf-hub:org/repo"`` / ``"local-dir:/path"``.
        pretrained: a weight tag of that architecture (``open_clip.list_pretrained()`` lists the
            pairs), a path to a local checkpoint file, or ``None`` for random weights (a
            warning says so). Must be ``None`` with ``hf-hub:``/``local-dir:`` names.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (``None``: CUDA when available).
        batch_size: images or texts per forward pass.
        precision: ``"fp32"``, ``"fp16"`` (CUDA only: weights and inputs in half precision,
            layer norms in float32, as open_clip's ``precision="fp16"``) or ``"bf16"``;
            ``None`` picks ``"fp16"`` on CUDA and ``"fp32"`` elsewhere. Outputs are float32.
        progress: show a tqdm progress bar on stderr.
        num_workers: threads that load and preprocess images (0: in the calling thread).
        cache_dir: download cache for open_clip/huggingface_hub (``None``: their default).
        tokenizer_languages: language label -> tokenizer language code, for tokenizers that
            take a source language (NLLB); overrides :data:`FLORES200_CODES`.

    Raises:
        ValueError: unknown architecture or tag, bad device/precision/batch size.
        FileNotFoundError: ``pretrained`` looks like a path but no file is there.
        WeightsUnavailableError: the weights or tokenizer files could not be downloaded.
        ImportError: the model needs ``transformers`` (multilingual text towers) and it is missing.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        precision: str | None = None,
        progress: bool = True,
        num_workers: int = 0,
        cache_dir: str | os.PathLike | None = None,
        tokenizer_languages: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"model_name: expected a non-empty string, got {model_name!r}")
        self.model_name = model_name
        self.pretrained = None if pretrained is None else os.fspath(pretrained)
        self.device = _resolve_device(device)
        self.precision = _resolve_precision(precision, self.device)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.progress = bool(progress)
        self.num_workers = check_positive_int(num_workers, "num_workers", minimum=0)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        extra_codes = dict(tokenizer_languages or {})
        bad = [
            (k, v)
            for k, v in extra_codes.items()
            if not (isinstance(k, str) and isinstance(v, str))
        ]
        if bad:
            raise TypeError(
                f"tokenizer_languages: expected a mapping of language -> code strings, got {bad[0]!r}"
            )
        self.tokenizer_languages = {**FLORES200_CODES, **extra_codes}

        hub = model_name.startswith("hf-hub:")
        # without a download (all but hf-hub: names), name, tag and transformers are checked first
        config = None if hub else _model_config(model_name, self.pretrained, self.cache_dir)
        if config is not None:
            _check_transformers_available(model_name, config)
        downloads = hub or (self.pretrained is not None and not Path(self.pretrained).is_file())
        with offline_unless_reachable(downloads) as offline:
            try:
                model, preprocess, tokenizer = self._load(model_name, config)
            except WeightsUnavailableError as exc:
                raise WeightsUnavailableError(f"{offline}\n{exc}" if offline else str(exc)) from exc
        self._model = model.eval()
        self._preprocess: Callable[[Image.Image], torch.Tensor] = preprocess
        self._tokenizer = tokenizer
        self._input_dtype = _INPUT_DTYPES[self.precision]

    def _load(
        self, model_name: str, config: dict | None
    ) -> tuple[torch.nn.Module, Callable, Callable]:
        """Model, image preprocessing and tokenizer; download failures as WeightsUnavailableError.
        ``config`` is the checked model config, or None to fetch and check it (hf-hub: names)."""
        if config is None:
            config = _model_config(model_name, self.pretrained, self.cache_dir)
            _check_transformers_available(model_name, config)
        _fetch_weights(model_name, self.pretrained, self.cache_dir)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name,
                pretrained=self.pretrained,
                precision=self.precision,
                device=self.device,
                cache_dir=self.cache_dir,
            )
            tokenizer = open_clip.get_tokenizer(model_name, cache_dir=self.cache_dir)
        except Exception as exc:
            if _is_download_failure(exc):
                raise WeightsUnavailableError(
                    _unavailable_message(model_name, self.pretrained, exc)
                ) from exc
            raise
        return model, preprocess, tokenizer

    def __repr__(self) -> str:
        return (
            f"OpenCLIPEncoder(model_name={self.model_name!r}, pretrained={self.pretrained!r}, "
            f"device={str(self.device)!r}, precision={self.precision!r}, "
            f"batch_size={self.batch_size})"
        )

    @property
    def model(self) -> torch.nn.Module:
        """The open_clip model (eval mode; do not modify it)."""
        return self._model

    # ------------------------------------------------------------------ images
    def embed_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """``[N, D]`` float32 unit-norm embeddings of PIL images and/or image file paths
        (files are opened lazily, one batch at a time)."""
        images = _as_list(images, "images")
        n = len(images)
        for i, image in enumerate(images):
            if isinstance(image, (str, os.PathLike)):
                if not Path(image).is_file():
                    raise FileNotFoundError(f"images[{i}]: expected an image file, got {image!r}")
            elif not isinstance(image, Image.Image):
                raise TypeError(
                    f"images[{i}]: expected a PIL.Image.Image or a file path, "
                    f"got {type(image).__name__}"
                )
        chunks = []
        executor = ThreadPoolExecutor(self.num_workers) if self.num_workers else nullcontext()
        with self._progress_bar(n, "images") as bar, executor:
            load_all = executor.map if self.num_workers else map
            for start in range(0, n, self.batch_size):
                batch = images[start : start + self.batch_size]
                pixels = torch.stack(list(load_all(self._load_image, batch)))
                chunks.append(self._embed(self._model.encode_image, pixels.to(self._input_dtype)))
                bar.update(len(batch))
        return torch.cat(chunks)

    def encode_images(
        self,
        images: Sequence[ImageInput],
        *,
        item: Sequence[object] | np.ndarray | None = None,
        id: Sequence[object] | np.ndarray | None = None,  # noqa: A002 - EmbeddingSet label name
        culture: str | Sequence[object] | np.ndarray | None = None,
        extra: Mapping[str, Sequence[object] | np.ndarray] | None = None,
    ) -> EmbeddingSet:
        """Image rows of ``images`` (PIL images and/or file paths).

        ``item`` (relevance: captions of the same item), ``id``, ``culture`` (one string or
        one per image) and ``extra`` are passed to :class:`EmbeddingSet`. The extra column
        ``caption`` is ``""`` for images (unless given), so that image sets concatenate with the
        caption sets of :meth:`encode_texts` and ``USEEncoder``.
        """
        images = _as_list(images, "images")
        check_labels(len(images), item=item, id=id, culture=culture, extra=extra)
        columns = dict(extra or {})
        columns.setdefault("caption", np.full(len(images), "", dtype="<U1"))
        return EmbeddingSet(
            self.embed_images(images),
            modality="image",
            item=item,
            id=id,
            culture=culture,
            extra=columns,
        )

    def _load_image(self, image: ImageInput) -> torch.Tensor:
        if isinstance(image, Image.Image):
            return self._preprocess(image)
        with Image.open(image) as opened:
            return self._preprocess(opened)

    # ------------------------------------------------------------------- texts
    def embed_texts(self, texts: Sequence[str], language: str | Sequence[str]) -> torch.Tensor:
        """``[N, D]`` float32 unit-norm embeddings of ``texts`` in ``language`` (one code, or one
        per text; language-aware tokenizers tokenise each language separately)."""
        texts = _check_texts(texts)
        languages = _check_language(language, len(texts))
        rows, chunks = [], []
        with self._progress_bar(len(texts), "texts") as bar:
            for code, group in self._tokenizer_groups(languages):
                if code is not None:
                    self._tokenizer.set_language(code)
                for start in range(0, len(group), self.batch_size):
                    batch = group[start : start + self.batch_size]
                    tokens = self._tokenizer([texts[i] for i in batch])
                    chunks.append(self._embed(self._model.encode_text, tokens))
                    rows.append(batch)
                    bar.update(len(batch))
        out = torch.empty(len(texts), chunks[0].shape[1])
        out[torch.from_numpy(np.concatenate(rows))] = torch.cat(chunks)
        return out

    def encode_texts(
        self,
        texts: Sequence[str],
        language: str | Sequence[str] | None = None,
        *,
        item: Sequence[object] | np.ndarray | None = None,
        id: Sequence[object] | np.ndarray | None = None,  # noqa: A002 - EmbeddingSet label name
        culture: str | Sequence[object] | np.ndarray | None = None,
        extra: Mapping[str, Sequence[object] | np.ndarray] | None = None,
        candidate_languages: Sequence[str] | None = None,
    ) -> EmbeddingSet:
        """Text rows of ``texts`` with their ``language`` (BCP-47, one code or one per text).

        Where no language is given (``language=None``, or ``""`` entries) it is identified from
        the text by ``xcm_debias.langid.identify_languages`` (the ``langid`` extra), among
        ``candidate_languages`` when given (e.g. the calibration set's languages: more
        accurate); language-aware tokenizers then tokenise under the identified language.
        ``item`` (the item each caption describes), ``id``, ``culture`` and ``extra`` are passed
        to :class:`EmbeddingSet`; the texts themselves are kept in the extra column ``caption``
        (as ``USEEncoder`` does).
        """
        texts = _check_texts(texts)
        languages = languages_of(texts, language, candidate_languages)
        return text_rows(
            lambda: self.embed_texts(texts, languages),
            texts,
            languages,
            item=item,
            id=id,
            culture=culture,
            extra=extra,
        )

    def _tokenizer_groups(self, language: np.ndarray) -> list[tuple[str | None, np.ndarray]]:
        """Rows to tokenise together: all of them, or one group per language when the
        tokenizer takes a source language (open_clip's ``HFTokenizer`` of NLLB models)."""
        if not callable(getattr(self._tokenizer, "set_lang_fn", None)):
            return [(None, np.arange(len(language)))]
        groups = []
        for lang in sorted(set(language.tolist())):
            code = self.tokenizer_languages.get(
                lang,
                self.tokenizer_languages.get(
                    language_key(lang), lang if _FLORES_CODE.match(lang) else None
                ),
            )
            if code is None:
                raise ValueError(
                    f"language: {self.model_name!r} tokenises with a source language, but "
                    f"{lang!r} has no tokenizer code; pass tokenizer_languages={{{lang!r}: "
                    "'<FLORES-200 code, e.g. deu_Latn>'}} or use FLORES-200 codes as languages"
                )
            groups.append((code, np.flatnonzero(language == lang)))
        return groups

    # ---------------------------------------------------------------- plumbing
    def _embed(
        self, encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """``encode(x) / ‖encode(x)‖₂`` in float32 on the CPU, in eval mode without gradients."""
        with torch.inference_mode():
            features = encode(x.to(self.device))
            return F.normalize(features.float(), dim=-1).cpu()

    def _progress_bar(self, total: int, what: str) -> tqdm:
        return tqdm(
            total=total,
            desc=f"encoding {what} ({self.model_name})",
            unit=what[:-1],
            file=sys.stderr,
            disable=not self.progress,
        )


# ---------------------------------------------------------------------- validation
def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device: expected 'cpu', 'cuda', 'cuda:<index>' or None, got {device!r}"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device, got {device!r} (no CUDA here)")
    return resolved


def _resolve_precision(precision: str | None, device: torch.device) -> str:
    if precision is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS} or None, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision: 'fp16' needs a CUDA device, got device {str(device)!r}; "
            "use 'fp32' or 'bf16' there"
        )
    return precision


def _as_list(values: object, name: str) -> list:
    """A non-empty list from a list/tuple/array/Series (one string is rejected, not split)."""
    if isinstance(values, (str, bytes, os.PathLike, Image.Image)) or not isinstance(
        values, Iterable
    ):
        raise TypeError(f"{name}: expected a list of {name}, got {type(values).__name__}")
    values = list(values)
    if not values:
        raise ValueError(f"{name}: expected at least one, got an empty list")
    return values


def _check_texts(texts: object) -> list[str]:
    return check_texts(_as_list(texts, "texts"))


def _check_language(language: object, n: int) -> np.ndarray:
    languages = as_label_array(language, "language", n)
    empty = np.flatnonzero(languages == "")
    if len(empty):
        raise ValueError(
            f"language: expected a language code for every text, got {len(empty)} empty "
            f"(first at position {int(empty[0])})"
        )
    return languages


# ------------------------------------------------------------------------- weights
def _model_config(model_name: str, pretrained: str | None, cache_dir: str | None) -> dict:
    """Validate the name and ``pretrained`` and return the model config (``hf-hub:`` configs
    are downloaded; ``local-dir:`` ones read from the folder)."""
    if model_name.startswith(("hf-hub:", "local-dir:")):
        schema, _, location = model_name.partition(":")
        if pretrained is not None:
            raise ValueError(
                f"pretrained: expected None with a {schema}: model name (its weights come from "
                f"{location!r}), got {pretrained!r}"
            )
        if schema == "local-dir":
            config_path = Path(location) / "open_clip_config.json"
            if not config_path.is_file():
                raise FileNotFoundError(
                    f"model_name: expected a folder with open_clip_config.json and weights at "
                    f"{location!r}, found no {config_path.name}"
                )
        else:
            try:
                config_path = open_clip.pretrained.download_pretrained_from_hf(
                    location, filename="open_clip_config.json", cache_dir=cache_dir
                )
            except Exception as exc:
                raise WeightsUnavailableError(_unavailable_message(model_name, None, exc)) from exc
        with open(config_path, encoding="utf-8") as f:
            return json.load(f).get("model_cfg", {})

    architecture = model_name.replace("/", "-")
    known = open_clip.list_models()
    if architecture not in known:
        close = difflib.get_close_matches(architecture, known, n=5, cutoff=0.5)
        raise ValueError(
            f"model_name: expected an open_clip architecture, got {model_name!r}"
            + (f" (close: {close})" if close else "")
            + "; open_clip.list_models() lists the architectures and open_clip.list_pretrained() "
            "the (architecture, tag) pairs with weights; 'hf-hub:org/repo' and "
            "'local-dir:/path' names are accepted too"
        )
    tags = open_clip.list_pretrained_tags_by_model(architecture)
    if pretrained is None:
        warnings.warn(
            f"OpenCLIPEncoder({model_name!r}): no pretrained weights, the model is randomly "
            f"initialised; pass pretrained= one of {tags} or a checkpoint file",
            UserWarning,
            stacklevel=3,
        )
    elif not open_clip.get_pretrained_cfg(architecture, pretrained):
        if Path(pretrained).suffix or os.sep in pretrained or "/" in pretrained:
            if not Path(pretrained).is_file():
                raise FileNotFoundError(
                    f"pretrained: expected a checkpoint file (.bin/.pt/.pth/.safetensors), "
                    f"got {pretrained!r}, which does not exist"
                )
        elif not Path(pretrained).is_file():
            raise ValueError(
                f"pretrained: expected a weight tag of {architecture!r} ({tags}) or a "
                f"checkpoint file, got {pretrained!r}"
            )
    return open_clip.get_model_config(architecture) or {}


def _fetch_weights(model_name: str, pretrained: str | None, cache_dir: str | None) -> None:
    """Download (or find in the cache) the weights a tag or an ``hf-hub:`` name refers to,
    raising ``WeightsUnavailableError`` when that fails; files and random init need nothing."""
    try:
        if model_name.startswith("hf-hub:"):
            location = model_name.removeprefix("hf-hub:")
            open_clip.pretrained.download_pretrained_from_hf(location, cache_dir=cache_dir)
        elif pretrained is not None:
            tag_config = open_clip.get_pretrained_cfg(model_name.replace("/", "-"), pretrained)
            if tag_config:
                open_clip.download_pretrained(tag_config, cache_dir=cache_dir)
    except Exception as exc:
        raise WeightsUnavailableError(_unavailable_message(model_name, pretrained, exc)) from exc


def _check_transformers_available(model_name: str, config: Mapping) -> None:
    text = config.get("text_cfg", {})
    if not ("hf_model_name" in text or "hf_tokenizer_name" in text):
        return
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"OpenCLIPEncoder({model_name!r}): its text tower/tokenizer comes from Hugging Face "
            f"({text.get('hf_tokenizer_name') or text.get('hf_model_name')}) and needs the "
            "'transformers' package: pip install 'xcm_debias[multilingual]' (transformers and "
            "sentencepiece)"
        ) from exc


def _is_download_failure(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it chains is a network/cache miss (huggingface_hub,
    urllib and transformers raise ``OSError`` subclasses for those)."""
    from huggingface_hub.errors import EntryNotFoundError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (OSError, EntryNotFoundError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _unavailable_message(model_name: str, pretrained: str | None, exc: BaseException) -> str:
    if model_name.startswith("hf-hub:"):
        what = f"{model_name!r} (https://huggingface.co/{model_name.removeprefix('hf-hub:')})"
        local = (
            "download the repository's files (open_clip_config.json, the weights and any "
            "tokenizer files) into a folder and pass model_name='local-dir:/path/to/folder'"
        )
    else:
        cfg = open_clip.get_pretrained_cfg(model_name.replace("/", "-"), pretrained or "")
        hub = cfg.get("hf_hub", "").rstrip("/")
        source = f"https://huggingface.co/{hub}" if hub else cfg.get("url", "")
        what = f"{model_name!r}, pretrained={pretrained!r}" + (f" ({source})" if source else "")
        local = (
            "pass pretrained='/path/to/checkpoint' (a .bin/.pt/.pth/.safetensors state dict of "
            f"this architecture), e.g. OpenCLIPEncoder({model_name!r}, "
            "pretrained='open_clip_pytorch_model.bin')"
        )
    return (
        f"could not load the weights of open_clip model {what}: {type(exc).__name__}: {exc}\n"
        "Provide them locally in one of two ways:\n"
        "  1. download once with network access (they land in the Hugging Face cache, "
        "~/.cache/huggingface/hub or $HF_HUB_CACHE, or in cache_dir= when given), then set "
        "HF_HUB_OFFLINE=1 in the environment before starting Python to use the cached copy;\n"
        f"  2. {local}.\n"
        "Models with a Hugging Face text tower (xlm-roberta, NLLB) or tokenizer (SigLIP i18n) "
        "also need that tokenizer's files in the cache."
    )
