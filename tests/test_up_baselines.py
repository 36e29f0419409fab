"""UP Markov table (headstart.up.baselines): best orders, the original's stored values beside ours."""
import numpy as np

from headstart.up.evalsets import up_eval_set
from headstart.up.baselines import SPEC_MARKOV, SPEC_MARKOV_CTX, markov_markdown, markov_table


def test_markov_table_and_markdown():
    rng = np.random.default_rng(0)
    text = np.frombuffer(b"the cat sat on the mat. " * 400, np.uint8)
    noisy = np.where(rng.random(len(text)) < 0.05, rng.integers(0, 256, len(text)), text).astype(np.uint8)
    wp = (noisy[:6000], noisy[6000:8000], noisy[8000:])
    sets = {"dyck": (np.frombuffer(up_eval_set("dyck", 3000, seed=1), np.uint8),
                     np.frombuffer(up_eval_set("dyck", 3000, seed=0), np.uint8))}
    df = markov_table(sets, wp, context=64, windows=20)
    assert set(zip(df["set"], df["kind"])) == {("wp", "trained"), ("wp", "in_context"), ("dyck", "in_context")}
    assert df.groupby(["set", "kind"])["best"].sum().eq(1).all()
    trained = df[(df["kind"] == "trained") & df["best"]].iloc[0]
    assert trained["order"] >= 2 and trained["test_bits"] < 2.0     # repetitive text: a high order wins
    md = markov_markdown(df)
    assert f"{SPEC_MARKOV['wp']:.2f}" in md and f"{SPEC_MARKOV_CTX['dyck']:.2f}" in md
    assert md.count("\n|") == 5                                        # header, rule, 3 rows
