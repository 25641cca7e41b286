"""Layer 4: the policy (a Hugging Face causal LM), its phenotype prior, the one constrained decoder, model cards."""
