"""The jepa study (T-JEPA). masking: R/X/S target masks, random-subset context, target packing, predictor mask."""
