"""DeBERTa-v2 (disentangled attention on the shared core) against Hugging Face ``transformers``.

Small random-init ``DebertaV2ForMaskedLM`` / ``DebertaV2Model`` (weights spread as for GPT-2 and
BERT) over the options that change the math: shared or separate position projections, c2p and/or
p2c, log buckets or clipping, absolute positions on or off, LayerNorm on the relative table,
legacy or new MLM head layout, token types, no relative attention at all, and the enhanced mask
decoder (HF's ``z_steps`` set by hand, our ``emd_steps``). Padded batches (right padding and one
left-padded row). In float32: outputs within 1e-5, every parameter's gradient and
the input-embedding gradient within 1e-5 relative (``parity.measure``), and ``to_hf(from_hf(m))``
exactly ``m``; in float64 the same within 1e-10.
"""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers.models.deberta_v2 import modeling_deberta_v2 as hf_deberta_v2  # noqa: E402

from headstart.config import ConfigError  # noqa: E402
from headstart.models.deberta import Deberta, DebertaConfig  # noqa: E402
from headstart.models.gpt import GPT, GPTConfig  # noqa: E402
from headstart.models.hf import ConversionError, from_hf, to_hf  # noqa: E402
from headstart.models.relpos import log_bucket, relative_index  # noqa: E402
from headstart.models.transformer import DisentangledSelfAttention, KVCache  # noqa: E402
from headstart.reference import parity  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest: tiny models, one thread

OUT_ATOL, GRAD_RTOL = 1e-5, 1e-5
FP64_ATOL, FP64_GRAD_RTOL = 1e-10, 1e-10


def check(hf, ids, mask, tt, targets, atol=OUT_ATOL, rtol=GRAD_RTOL):
    """Outputs, every gradient, the input-embedding gradient, and the exact round trip."""
    res = parity.measure(hf, ids, mask, tt, targets)
    assert res["finite"]
    assert res["output"] <= atol, res["output"]
    assert res["grad"] <= rtol, f"{res['grad_worst_param']}: grad ratio {res['grad']:.3g}"
    assert res["input_grad"] <= rtol, res["input_grad"]
    assert res["roundtrip"] == 0.0, res["roundtrip"]
    ours = res["ours"]
    back = to_hf(ours)
    assert type(back) is type(hf)
    s_ref, s_back = hf.state_dict(), back.state_dict()
    assert set(s_ref) == set(s_back)
    assert all(torch.equal(s_ref[k], s_back[k]) for k in s_ref)
    return ours


CASES = {
    # name: (n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, head, extra DebertaV2Config)
    "v3-shared-ln": (2, 3, 24, 53, 16, 3, 11, "mlm", {}),
    "separate-buckets-abspos": (2, 3, 24, 61, 32, 3, 23, "mlm",
                                {"share_att_key": False, "position_buckets": 8, "max_relative_positions": 40,
                                 "position_biased_input": True, "norm_rel_ebd": "none"}),
    "c2p-clipped-bare": (2, 5, 40, 47, 16, 3, 13, "none",
                         {"pos_att_type": ["c2p"], "share_att_key": False, "max_relative_positions": 5}),
    "p2c-buckets-newhead-types": (1, 2, 16, 41, 16, 4, 14, "mlm",
                                  {"pos_att_type": "p2c", "legacy": False, "position_buckets": 6,
                                   "type_vocab_size": 2, "hidden_act": "gelu_new", "layer_norm_eps": 1e-5}),
    "no-relative-attention": (2, 3, 24, 53, 16, 3, 9, "none",
                              {"relative_attention": False, "pos_att_type": None, "norm_rel_ebd": "none",
                               "position_biased_input": True}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_deberta_parity(name):
    n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, head, extra = CASES[name]
    hf = parity.hf_deberta(seq_len, n_layer, n_head, n_embd, vocab, n_pos, head=head, **extra)
    types = extra.get("type_vocab_size", 0) > 0
    ids, mask, tt, targets = parity.make_batch(seq_len, vocab, batch, seq_len, left_pad_row=1, types=types)
    assert (mask == 0).any()
    ours = check(hf, ids, mask, tt, targets)
    assert isinstance(ours, Deberta) and ours.config.head == head
    relative = extra.get("relative_attention", True)
    assert (ours.transformer.rel is not None) == relative
    assert all(isinstance(b.attn, DisentangledSelfAttention) for b in ours.transformer.h)
    if relative:
        # the relative parameters took part in the gradient comparison with real gradients
        rel_params = {n: p for n, p in ours.named_parameters() if ".rel." in n or ".attn.pos_" in n}
        assert rel_params and all(p.grad.abs().max() > 0 for p in rel_params.values()), sorted(rel_params)
        separate = not extra.get("share_att_key", True)
        assert any(".attn.pos_" in n for n in rel_params) == separate


@pytest.mark.parametrize("name", ["v3-shared-ln", "separate-buckets-abspos"])
def test_deberta_parity_float64(name):
    n_layer, n_head, n_embd, vocab, n_pos, batch, seq_len, head, extra = CASES[name]
    hf = parity.hf_deberta(seq_len, n_layer, n_head, n_embd, vocab, n_pos, head=head, **extra).double()
    ids, mask, tt, targets = parity.make_batch(seq_len, vocab, batch, seq_len, left_pad_row=1)
    ours = check(hf, ids, mask, tt, targets, atol=FP64_ATOL, rtol=FP64_GRAD_RTOL)
    assert next(ours.parameters()).dtype == torch.float64


EMD_CASES = {
    # name: (head, z_steps, n_layer, extra DebertaV2Config)
    "mlm-z2": ("mlm", 2, 2, {}),
    "mlm-z3-separate-buckets-abspos": ("mlm", 3, 2, {"share_att_key": False, "position_buckets": 8,
                                                     "max_relative_positions": 40, "position_biased_input": True}),
    "mlm-z2-newhead-one-layer": ("mlm", 2, 1, {"legacy": False, "pos_att_type": ["c2p"]}),
    "bare-z2": ("none", 2, 2, {"position_buckets": 6}),
    "bare-z3": ("none", 3, 3, {"norm_rel_ebd": "none"}),
}


@pytest.mark.parametrize("name", list(EMD_CASES))
def test_enhanced_mask_decoder_parity(name):
    """emd_steps against HF's z_steps branch (run by parity.hf_forward on HF's own layers): outputs,
    every gradient, and the round trip, which keeps z_steps."""
    head, z, n_layer, extra = EMD_CASES[name]
    hf = parity.hf_deberta(len(name), n_layer, 3, 24, 53, 64, head=head, z_steps=z, **extra)
    ids, mask, tt, targets = parity.make_batch(7, 53, 3, 17, left_pad_row=1)
    ours = check(hf, ids, mask, tt, targets)
    assert ours.config.emd_steps == z
    back = to_hf(ours)
    assert getattr(back, "deberta", back).z_steps == z
    assert from_hf(back).config == ours.config


def test_enhanced_mask_decoder_parity_float64():
    hf = parity.hf_deberta(3, 2, 3, 24, 53, 32, z_steps=3, position_buckets=8).double()
    ids, mask, tt, targets = parity.make_batch(3, 53, 3, 13, left_pad_row=1)
    ours = check(hf, ids, mask, tt, targets, atol=FP64_ATOL, rtol=FP64_GRAD_RTOL)
    assert ours.config.emd_steps == 3 and next(ours.parameters()).dtype == torch.float64


def test_enhanced_mask_decoder_changes_the_output():
    """Each EMD step moves HF's and our logits far beyond the tolerance (so its parity is no
    accident), and z_steps = 1 is off, as in HF."""
    ids, mask, _, _ = parity.make_batch(5, 53, 3, 15, left_pad_row=1)
    valid = mask.bool()
    hf_out, ours_out = {}, {}
    for z in (0, 1, 2, 3):
        hf = parity.hf_deberta(5, 2, 3, 24, 53, 32, z_steps=z)
        with torch.no_grad():
            hf_out[z] = parity.hf_forward(hf, ids, mask, None)[valid]
            ours_out[z] = from_hf(hf).eval()(ids, attention_mask=mask)[valid]
    for out in (hf_out, ours_out):
        assert torch.equal(out[0], out[1])
        assert (out[2] - out[0]).abs().max().item() > 100 * OUT_ATOL
        assert (out[3] - out[2]).abs().max().item() > 100 * OUT_ATOL
    assert all((ours_out[z] - hf_out[z]).abs().max().item() <= OUT_ATOL for z in hf_out)


def test_hf_own_z_steps_branch():
    """Where HF's own z_steps > 1 branch runs, ours matches it directly; in transformers 5.24 it
    fails (see parity.z_steps_branch), which this reports as a skip."""
    hf = parity.hf_deberta(2, 2, 3, 24, 53, 32, z_steps=2)
    ids, mask, _, _ = parity.make_batch(2, 53, 2, 11)
    with torch.no_grad():
        try:
            ref = hf(input_ids=ids, attention_mask=mask).logits
        except (AttributeError, TypeError) as err:
            pytest.skip(f"transformers {transformers.__version__}: DebertaV2Model's z_steps > 1 branch fails "
                        f"({type(err).__name__}: {err}); parity runs it through parity.z_steps_branch")
        out = from_hf(hf).eval()(ids, attention_mask=mask)
    assert (out - ref)[mask.bool()].abs().max().item() <= OUT_ATOL


@pytest.mark.parametrize("norm, dropout_at", [("pre", "branch"), ("post", "branch"), ("post", "output"),
                                              ("none", "branch")])
def test_block_with_its_own_input_as_query_is_the_block(norm, dropout_at):
    """The separate-query path of the core (Block, SelfAttention) reduces to the plain one when the
    queries are the keys' own input, for every norm placement and for both attention kinds."""
    torch.manual_seed(0)
    x = torch.randn(2, 9, 24)
    for attention in ("standard", "disentangled"):
        model = GPT(GPTConfig(vocab_size=31, block_size=16, n_layer=1, n_head=3, n_embd=24, pos="none",
                              norm=norm, dropout_at=dropout_at, attention=attention, position_buckets=6))
        block, rel = model.transformer.h[0], model.transformer.rel
        pos = None if rel is None else rel(0, 9)
        with torch.no_grad():
            torch.testing.assert_close(block(x, None, pos, query=x), block(x, None, pos), rtol=0, atol=1e-6)
            assert (block(x, None, pos, query=x.flip(1)) - block(x, None, pos)).abs().max() > 1e-2


def test_enhanced_mask_decoder_flops_and_cache():
    """Each EMD step costs one more run of the last layer; the EMD refuses a KV cache."""
    common = dict(n_head=2, n_embd=16, vocab_size=40, block_size=32, position_buckets=8, share_att_key=False)
    assert (Deberta(DebertaConfig(n_layer=2, emd_steps=3, **common)).flops_per_token(12)
            == Deberta(DebertaConfig(n_layer=4, **common)).flops_per_token(12))
    assert (Deberta(DebertaConfig(n_layer=2, emd_steps=1, **common)).flops_per_token(12)
            == Deberta(DebertaConfig(n_layer=2, **common)).flops_per_token(12))
    model = Deberta(DebertaConfig(n_layer=2, **common))
    with pytest.raises(ValueError, match="KV cache"):
        model.transformer(torch.zeros(1, 3, dtype=torch.long), cache=KVCache(2), emd_steps=2)


def test_without_attention_mask():
    hf = parity.hf_deberta(3, 2, 3, 24, 50, 32, position_buckets=8)
    ours = from_hf(hf).eval()
    ids = torch.randint(1, 50, (2, 19), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids) - hf(input_ids=ids).logits).abs().max().item() <= OUT_ATOL


def test_the_comparison_sees_the_relative_terms():
    """Each relative ingredient moves the logits far beyond the tolerance, so parity is no accident."""
    ids, mask, _, _ = parity.make_batch(4, 50, 2, 15)

    def logits(**extra):
        hf = parity.hf_deberta(4, 2, 3, 24, 50, 32, share_att_key=False, **extra)
        with torch.no_grad():
            return hf(input_ids=ids, attention_mask=mask).logits[mask.bool()]

    base = logits()
    for extra in ({"pos_att_type": ["c2p"]}, {"position_buckets": 8}, {"max_relative_positions": 4},
                  {"norm_rel_ebd": "none"}):
        assert (logits(**extra) - base).abs().max().item() > 100 * OUT_ATOL, extra


@pytest.mark.parametrize("buckets, max_position", [(8, 40), (6, 16), (256, 512), (32, 33), (64, 1000)])
def test_relative_index_matches_hf(buckets, max_position):
    rel = torch.arange(-700, 701)
    assert torch.equal(log_bucket(rel, buckets, max_position),
                       hf_deberta_v2.make_log_bucket_position(rel, buckets, max_position).long())
    T = 300
    x = torch.zeros(1, T, 4)
    ref = hf_deberta_v2.build_relative_position(x, x, bucket_size=buckets, max_position=max_position)[0]
    assert torch.equal(relative_index(T, T, buckets, buckets, max_position), (ref + buckets).clamp(0, 2 * buckets - 1))
    # without buckets: plain offsets, clipped to the table
    ref = hf_deberta_v2.build_relative_position(x, x)[0]
    assert torch.equal(relative_index(T, T, 50, 0, 0), (ref + 50).clamp(0, 99))
    # after a cache: the last rows of the full table
    assert torch.equal(relative_index(5, T, buckets, buckets, max_position),
                       relative_index(T, T, buckets, buckets, max_position)[-5:])


def test_causal_disentangled_attention_with_kv_cache():
    """The attention variant is a core option: a causal GPT with disentangled attention gives the
    same logits token by token through the KV cache as in one pass."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=31, block_size=32, n_layer=2, n_head=3, n_embd=24, pos="none",
                          attention="disentangled", position_buckets=6, max_relative_positions=20)).eval()
    ids = torch.randint(0, 31, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        steps = [model(ids[:, :9], cache=cache)] + [model(ids[:, t:t + 1], cache=cache) for t in range(9, 17)]
    assert (torch.cat(steps, dim=1) - full).abs().max().item() <= 1e-5
    # and the future does not leak into the past
    with torch.no_grad():
        changed = model(torch.cat([ids[:, :10], (ids[:, 10:] + 1) % 31], dim=1))
    assert torch.allclose(changed[:, :10], full[:, :10], atol=1e-6)


def test_flops_count_the_relative_terms():
    """flops_per_token's relative part against torch's FLOP counter on one layer's relative bias
    (forward + backward): 12 C span per term per token, plus the table projections it documents
    as left out. (Whole models are not compared: SDPA's CPU kernel is not counted at all, its
    math path with a float bias is.)"""
    from torch.utils.flop_counter import FlopCounterMode

    B, T, span, C, L, nh = 2, 12, 8, 16, 2, 2
    common = dict(n_layer=L, n_head=nh, n_embd=C, vocab_size=40, block_size=32, position_buckets=span, head="none")
    g = torch.Generator().manual_seed(0)
    for share in (True, False):
        model = Deberta(DebertaConfig(**common, share_att_key=share))
        plain = Deberta(DebertaConfig(**common, pos_att_type=()))
        q, k = (torch.randn(B, nh, T, C // nh, generator=g, requires_grad=True) for _ in range(2))
        with FlopCounterMode(display=False) as fc:
            model.transformer.h[0].attn.score_bias(q, k, model.transformer.rel(0, T), None, 0).sum().backward()
        projection = 2 * 3 * 2 * (2 * span) * C * C  # 2 terms x (forward + 2 backward) matmuls of the table
        per_layer = (model.flops_per_token(T) - plain.flops_per_token(T)) // L
        assert fc.get_total_flops() == per_layer * B * T + projection


def test_config_checks():
    with pytest.raises(ConfigError, match="pos"):
        GPTConfig(attention="disentangled", pos="rotary")
    with pytest.raises(ConfigError, match="position_buckets"):
        DebertaConfig(position_buckets=1)
    with pytest.raises(ConfigError, match="pos_att_type"):
        DebertaConfig(pos_att_type=("c2p", "c2p"))
    with pytest.raises(ConfigError, match="pos_att_type"):
        DebertaConfig(pos_att_type=("p2p",))
    assert DebertaConfig(block_size=64, position_buckets=0).max_relative_positions == 64
    with pytest.raises(ConfigError, match="emd_steps"):
        DebertaConfig(emd_steps=-1)


def hf_conf(**kw):
    base = dict(vocab_size=30, hidden_size=12, num_hidden_layers=1, num_attention_heads=3, intermediate_size=20,
                max_position_embeddings=16, relative_attention=True, pos_att_type=["c2p", "p2c"])
    return transformers.DebertaV2Config(**{**base, **kw})


@pytest.mark.parametrize("kw, message", [
    (dict(conv_kernel_size=3), "conv_kernel_size=3"),
    (dict(embedding_size=8), "embedding_size=8"),
    (dict(talking_head=True), "talking_head"),
    (dict(attention_head_size=6), "attention_head_size=6"),
    (dict(pos_att_type=["c2p", "p2p"]), r"pos_att_type=\['c2p', 'p2p'\]"),
    (dict(pos_att_type=None), "relative_attention=True with an empty pos_att_type"),
    (dict(relative_attention=False), "without relative_attention"),
    (dict(norm_rel_ebd="batch_norm"), "norm_rel_ebd='batch_norm'"),
    (dict(position_buckets=1), "position_buckets=1"),
    (dict(hidden_act="silu"), "activation 'silu'"),
])
def test_from_hf_rejects_unsupported_options(kw, message):
    with pytest.raises(ConversionError, match=message):
        from_hf(transformers.DebertaV2Model(hf_conf(**kw)))


def test_from_hf_rejects_untied_legacy_head_and_other_classes():
    with pytest.raises(ConversionError, match="tie_word_embeddings=False"):
        from_hf(transformers.DebertaV2ForMaskedLM(hf_conf(tie_word_embeddings=False)))
    # the new head layout always decodes with the word embeddings: converted, tied
    ours = from_hf(transformers.DebertaV2ForMaskedLM(hf_conf(tie_word_embeddings=False, legacy=False)))
    assert ours.mlm.decoder.weight is ours.transformer.wte.weight
    with pytest.raises(ConversionError, match="unsupported model class DebertaV2ForSequenceClassification"):
        from_hf(transformers.DebertaV2ForSequenceClassification(hf_conf()))


def test_to_hf_rejects_what_deberta_cannot_express():
    small = dict(n_layer=1, n_head=2, n_embd=8, vocab_size=20, block_size=8, position_buckets=0)
    with pytest.raises(ConversionError, match="attention='disentangled'"):
        to_hf(Deberta(DebertaConfig(**small, attention="standard")))
    with pytest.raises(ConversionError, match="causal=False"):
        to_hf(Deberta(DebertaConfig(**small, causal=True)))
    with pytest.raises(ConversionError, match="tie_weights"):
        to_hf(Deberta(DebertaConfig(**small, tie_weights=False)))
    with pytest.raises(ConfigError, match="pooler"):
        DebertaConfig(**small, pooler=True)


def test_workflow_parity_rows_for_deberta():
    cfg = {"gpt2": [], "bert": [], "minilm": False,
           "deberta": [dict(n_layer=1, n_head=3, n_embd=24, vocab_size=41, n_positions=32, seq_len=13, batch=3,
                            position_buckets=8, share_att_key=False, position_biased_input=True, z_steps=2),
                       dict(n_layer=1, n_head=3, n_embd=24, vocab_size=41, n_positions=16, seq_len=9, batch=2,
                            head="none", pos_att_type=["p2c"], dtype="float64")],
           "logits_atol": 1e-5, "grad_rtol": 1e-5, "minilm_atol": 1e-4, "fp64_atol": 1e-10, "fp64_grad_rtol": 1e-10}
    df = parity.run(cfg, seed=0)
    assert set(df["model"]) == {"deberta"} and len(df) == 8
    assert df["passed"].all(), df.to_string()
    assert df["config"].str.contains("position_buckets=8").any()
    assert df["config"].str.contains("z_steps=2").any()
    assert parity.measure_models({**cfg, "deberta": None}, seed=0).empty


@pytest.mark.slow
def test_paper_scale_parity():
    """The paper config's full-size DeBERTa (v3-base shape, log buckets in use) matches in float64."""
    import yaml

    from conftest import REPO

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["reference"]["parity"]
    big = [c for c in cfg.get("deberta") or [] if c["n_layer"] == 12]
    if not big:
        pytest.skip("config.yaml lists no full-size reference.parity.deberta entry")
    rows = parity.parity_rows("deberta", big, seed=0)
    assert {r["dtype"] for r in rows} == {"float64"}
    bars = {"output": cfg["fp64_atol"], "grad": cfg["fp64_grad_rtol"], "input_grad": cfg["fp64_grad_rtol"],
            "roundtrip": 0.0}
    for r in rows:
        assert r["value"] <= bars[r["check"]], r
