"""One data-parallel training run of the shared loop, for tests/test_parallel.py: run it with plain
``python`` (one process) or under ``torchrun --nproc_per_node=N``; process 0 saves the metric rows
and the final parameters to ``argv[1]``. float64, no dropout, a fixed global batch per update."""
import sys

import torch

from headstart.models.gpt import GPT, GPTConfig
from headstart.train.loop import train

torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=16))   # dropouts default to 0


def batch_fn(i: int, micro: int) -> dict:
    g = torch.Generator().manual_seed(1000 * i + micro)
    ids = torch.randint(0, 37, (8, 16), generator=g)
    return {"input_ids": ids}


def loss_fn(m, batch):
    ids = batch["input_ids"]
    logits = m(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return {"loss": loss, "first_token_logit": logits[:, 0, 0].mean()}


rows = train(model, batch_fn, loss_fn,
             {"steps": 6, "lr": 3e-3, "warmup_steps": 2, "grad_accum": 2, "clip_norm": 0.5, "eval_every": 3,
              "progress": False, "seed": 0},
             checkpoint=sys.argv[2] if len(sys.argv) > 2 else None, device="cpu",
             evaluate=lambda m: {"val": float(m(torch.arange(15).unsqueeze(0)).square().mean())})
if int(__import__("os").environ.get("RANK", "0")) == 0:
    torch.save({"rows": rows, "state": model.state_dict()}, sys.argv[1])
