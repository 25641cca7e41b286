"""rarerank: rank candidate genes for rare-disease patients from their phenotype."""

__version__ = "0.1.0"
