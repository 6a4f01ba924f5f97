"""transform_dask: a fitted pipeline as a Dask batch map equals the in-process transform."""

from __future__ import annotations

import cloudpickle
import dask.array as da
import numpy as np
import pytest
import torch
from synthetic_processors import make_world

from xcm_debias import Debiased, ExactRetriever
from xcm_debias.distributed import transform_dask
from xcm_debias.processors import InvGC, LanguageAlignment, LanguageProjection
from xcm_debias.processors.base import NotFittedError


@pytest.fixture(scope="module")
def world():
    calib = make_world(n_items=40, dim=16, seed=0)
    test = make_world(n_items=37, dim=16, seed=1)
    pipeline = (LanguageAlignment() | InvGC(apply_to=("image", "text"), block_size=8)).fit(calib)
    return pipeline, test


def _dask_inputs(test, chunk: int):
    x = da.from_array(test.embeddings.numpy(), chunks=(chunk, 8))  # columns re-gathered inside
    language = da.from_array(test.language, chunks=chunk + 3)  # label chunks realigned inside
    return x, language


@pytest.mark.parametrize("shipped", [False, True])
def test_block_map_equals_the_in_process_transform(world, shipped):
    pipeline, test = world
    x, language = _dask_inputs(test, chunk=25)
    lazy = transform_dask(pipeline, x, modality=test.modality, language=language, item=test.item)
    assert lazy.numblocks == (len(test) // 25 + 1, 1)
    if shipped:  # what a distributed scheduler does with the graph: serialise it to workers
        lazy = cloudpickle.loads(cloudpickle.dumps(lazy))
    got = lazy.compute(scheduler="threads")
    expected = pipeline.transform(test).embeddings.numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert not np.allclose(expected, test.embeddings.numpy(), atol=1e-3)  # the map did something


def test_debiased_and_saved_pipelines_map_like_their_processors(world, tmp_path):
    pipeline, test = world
    x, language = _dask_inputs(test, chunk=40)
    expected = pipeline.transform(test).embeddings.numpy()
    path = pipeline.save(tmp_path / "pipeline.safetensors")
    from_path = transform_dask(path, x, modality=test.modality, language=language).compute()
    np.testing.assert_allclose(from_path, expected, rtol=0, atol=1e-6)
    calib = make_world(n_items=40, dim=16, seed=0)
    fair = Debiased(ExactRetriever(), LanguageProjection(method="center")).fit(calib)
    texts = test.where(modality="text")
    xt = da.from_array(texts.embeddings.numpy(), chunks=(30, 16))
    got = transform_dask(fair, xt, modality="text", language=texts.language).compute()
    np.testing.assert_allclose(got, fair.transform(texts).embeddings.numpy(), rtol=0, atol=1e-6)


def test_errors_name_the_argument(world):
    pipeline, test = world
    x, language = _dask_inputs(test, chunk=25)
    with pytest.raises(ValueError, match="language: the pipeline needs language labels"):
        transform_dask(pipeline, x, modality=test.modality)
    with pytest.raises(NotFittedError, match="pipeline: expected a fitted LanguageAlignment"):
        transform_dask(LanguageAlignment(), x, modality=test.modality, language=language)
    with pytest.raises(NotFittedError, match="pipeline: expected a fitted Debiased"):
        transform_dask(Debiased(ExactRetriever(), InvGC()), x, modality="image")
    with pytest.raises(
        ValueError, match="embeddings: the pipeline cannot transform rows of dimension 12"
    ):
        transform_dask(pipeline, x[:, :12], modality=test.modality, language=language)
    with pytest.raises(ValueError, match=r"language: expected a 1-D array of 148 labels"):
        transform_dask(pipeline, x, modality=test.modality, language=test.language[:5])
    with pytest.raises(TypeError, match="embeddings: expected a dask.array.Array"):
        transform_dask(pipeline, torch.zeros(3, 16), modality="image")
    with pytest.raises(ValueError, match="modality: expected one of"):
        transform_dask(pipeline, x, modality="audio", language=language)
    with pytest.raises(TypeError, match="pipeline: expected a fitted PostProcessor"):
        transform_dask(object(), x, modality="image")
