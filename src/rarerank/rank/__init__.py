"""Layer 5: rankers and their explanation: baselines, gene panels, predict, evidence, the patient report."""
