"""Universal pre-training (Bloem 2025, pbloem/up): data from random computation, and what it buys.

base.py      the shared source mechanics (generator, buffer, call / batch / state)
lstm.py      the paper's source: random LSTMs iterated through a buffer (faithful and batched)
sources.py   the transformer source and the uniform / pointwise / ndfa ablations; make_source
sample.py    shards of sampled rows with their cost (rule up_sample)
model.py     the target: post-LN byte transformer, μP, depth from width, progressive depth
evaluate.py  zero-shot bits per byte: all positions of strided windows, or random targets
evalsets.py  the synthetic out-of-distribution evaluation sets (rule up_evalset)
markov.py    order-k and in-context Markov baselines; baselines.py their table (rule up_markov)
pretrain.py  pre-training on shards (rule up_pretrain); finetune.py fine-tuning (rule up_finetune)
cost.py      wall time of pre-training and sampling, from the metrics and cost records; report.py the
             figures, tables and claims (rule up_report)
"""
