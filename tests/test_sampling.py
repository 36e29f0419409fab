"""headstart.sampling: greedy at temperature 0, the softmax distribution otherwise."""
import pytest
import torch

from headstart.sampling import sample_logits


def test_greedy_and_tempered_distribution():
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0])
    assert sample_logits(logits, 0.0).item() == 1
    g = torch.Generator().manual_seed(0)
    for t in (0.5, 1.0, 2.0):
        draws = sample_logits(logits.expand(100_000, 4), t, g)
        freq = torch.bincount(draws, minlength=4).float() / 100_000
        assert torch.allclose(freq, torch.softmax(logits / t, -1), atol=0.006)   # ~4 binomial SEs
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, -1.0)
