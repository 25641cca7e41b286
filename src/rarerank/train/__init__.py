"""Layer 6: the training stages (knowledge pretraining, SFT, RFT with GRPO) and their shared machinery."""
