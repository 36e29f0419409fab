"""The jepa study (T-JEPA). masking: R/X/S target masks, random-subset context, target packing, predictor mask.
monitors: RankMe, per-dimension std, mean pairwise cosine, masked mean-pool; schedules: I-JEPA EMA/WD/LR, ema_update_.
"""
