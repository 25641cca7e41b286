"""Layer 0: foundations and the two contracts (the rank grader, the predictions table). No imports from other layers."""
