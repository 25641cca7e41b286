"""Layer 2: free-text case reports to cases (concept recognition, negation, sections, gene mentions), and cohorts of any source."""
