"""Layer 1: the HPO ontology and gene annotations, reference files, the case record and its readers, splits, synthetic patients."""
