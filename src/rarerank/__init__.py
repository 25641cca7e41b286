"""rarerank: rank candidate genes for rare-disease patients from their phenotype.

``rarerank.rank_genes(model_dir, present, absent=None, genes=None)`` ranks one patient exactly as
``rarerank predict`` does (:func:`rarerank.rank.ranking.rank_genes`). It is imported on first use, so
``import rarerank`` stays light (no torch).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "rank_genes"]


def __getattr__(name: str):
    if name == "rank_genes":
        from rarerank.rank.ranking import rank_genes

        return rank_genes
    raise AttributeError(f"module 'rarerank' has no attribute {name!r}")
