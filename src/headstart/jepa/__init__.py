"""The JEPA study (T-JEPA on TinyStories; spec ../shared/specs/jepa.md, README "The JEPA study").

data: stories and SST-2 tokenized with our byte-level BPE, right-padded rows, seeded batches;
masking: R/X/S target masks, random-subset context, target packing, predictor mask, repeat-aware
dropping, the original's strategies file; model: context encoder, EMA target encoder, predictor,
loss; schedules: I-JEPA EMA/WD/LR; train: JEPA and equal-budget MLM pre-training with the collapse
monitors (monitors: RankMe, per-dimension std, mean pairwise cosine, masked mean-pool); probe: the
SST-2 linear probe; report: the figure, tables and claims.
"""
