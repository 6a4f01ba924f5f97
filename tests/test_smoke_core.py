import torch

from xcm_debias import EmbeddingSet, ExactRetriever


def test_exact_retriever_returns_the_item_itself_first():
    x = torch.nn.functional.normalize(
        torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    data = EmbeddingSet(x, modality="image")
    ranking = ExactRetriever(block_size=4).search(data, data, k=2)
    assert torch.equal(ranking.indices[:, 0], torch.arange(6))
