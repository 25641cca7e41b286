"""Layer 3: one metrics module for every method, figures, and exports for other tools."""
