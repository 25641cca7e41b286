"""Synthetic patients sampled from HPO gene annotations (knowledge pretraining and SFT replay).

Layer ``data``: imports annotations and ontology. The way phenotype-driven tools are evaluated on
simulated patients: for a gene, draw some of its annotated terms weighted by annotation frequency
(terms not drawn are "dropped"), replace some by an ancestor (imprecise annotation) or by a child
one or two levels down (a clinician's more specific term, which Phenomizer credits too), add a few
unrelated "noise" terms, and at some rate add an absent block: terms the gene is not annotated with
(nor any descendant of them), mixed with annotated terms marked absent (low-frequency ones more often),
so the model learns what an absent term means without relying only on the curation shortcut.
Everything is a pure function of the numpy Generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rarerank.core.settings import Settings, setting
from rarerank.data.annotations import GeneAnnotations
from rarerank.data.ontology import PHENOTYPIC_ABNORMALITY, Ontology


@dataclass(frozen=True)
class SyntheticConfig(Settings):
    """How synthetic patients are drawn (config keys under ``pretrain.synthetic``)."""

    section = "pretrain.synthetic"

    min_terms: int = setting(1, "fewest observed terms drawn per patient", ge=1)  # real cases start at one present term
    max_terms: int = setting(16, "most observed terms drawn per patient (uniform in between)", ge=1)  # 90% of real cases have <= 18
    unknown_frequency: float = setting(0.5, "weight of an annotation that gives no frequency", ge=0, le=1)  # the midpoint
    ancestor_rate: float = setting(0.03, "per-term chance of replacement by an ancestor (2% of real present terms are)", ge=0, le=1)
    descendant_rate: float = setting(
        0.07, "per-term chance of a child term one or two levels down (6% of real present terms are)", ge=0, le=1
    )
    noise_mean: float = setting(1.3, 'mean number of unrelated "noise" terms per patient (Poisson; 16% of real present terms)', ge=0)
    absent_rate: float = setting(0.85, "chance that a patient has an absent block (84% of real cases)", ge=0, le=1)
    max_absent: int = setting(16, "largest absent block (uniform from 1; real median 6)", ge=1)
    annotated_absent_rate: float = setting(0.6, "share of absent terms that are the gene's own features (75% in real cases)", ge=0, le=1)

    def problems(self) -> list[str]:
        problems = []
        if self.min_terms > self.max_terms:
            problems.append(f"synthetic terms range is empty: min_terms ({self.min_terms}) > max_terms ({self.max_terms})")
        if self.ancestor_rate + self.descendant_rate > 1:
            problems.append("synthetic ancestor_rate + descendant_rate must be at most 1 (both replace a term)")
        return problems


DEFAULT_SYNTHETIC = SyntheticConfig()  # the default draw: one shared instance (it is frozen)


@dataclass(frozen=True)
class SyntheticPatient:
    gene: str
    present: tuple[str, ...]
    absent: tuple[str, ...]


class PatientSampler:
    """Draw synthetic patients for any annotated gene."""

    def __init__(self, annotations: GeneAnnotations, ontology: Ontology, config: SyntheticConfig = DEFAULT_SYNTHETIC):
        self.config = config
        self.ontology = ontology
        self.genes = sorted(g for g, terms in annotations.terms.items() if any(f is None or f > 0 for f in terms.values()))
        if not self.genes:
            raise ValueError("no gene has a usable (non-excluded) annotation")
        self._terms: dict[str, np.ndarray] = {}
        self._logw: dict[str, np.ndarray] = {}
        self._excluded: dict[str, list[str]] = {}
        self._freq: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        for gene in self.genes:
            items = sorted(annotations.terms[gene].items())
            kept = [(t, config.unknown_frequency if f is None else f) for t, f in items if f is None or f > 0]
            self._terms[gene] = np.array([t for t, _ in kept])
            freq = np.array([max(w, 1e-3) for _, w in kept])
            self._freq[gene] = freq
            self._logw[gene] = np.log(freq)
            self._excluded[gene] = [t for t, f in items if f is not None and f == 0]
            for t, _ in kept:
                counts[t] = counts.get(t, 0) + 1
        # Noise and absent terms come from the marginal of annotated terms (common findings).
        self._marginal_terms = np.array(sorted(counts))
        weights = np.array([counts[t] for t in self._marginal_terms], dtype=float)
        self._marginal_cdf = np.cumsum(weights / weights.sum())
        self._closure: dict[str, frozenset[str]] = {}
        self._ancestors: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, list[str]] = {}
        for term, parents in ontology.parents.items():
            for parent in parents:
                self._children.setdefault(parent, []).append(term)
        for children in self._children.values():
            children.sort()
        top = {PHENOTYPIC_ABNORMALITY, *ontology.ancestors(PHENOTYPIC_ABNORMALITY)}
        self._too_general = frozenset(top)

    def closure(self, gene: str) -> frozenset[str]:
        """Annotated terms of ``gene`` with all their ancestors (anything a patient could show)."""
        found = self._closure.get(gene)
        if found is None:
            found = set()
            for term in self._terms[gene]:
                found |= self.ontology.ancestors(term)
            found = self._closure[gene] = frozenset(found)
        return found

    def _proper_ancestors(self, term: str) -> tuple[str, ...]:
        found = self._ancestors.get(term)
        if found is None:
            found = self._ancestors[term] = tuple(sorted(self.ontology.ancestors(term, include_self=False) - self._too_general))
        return found

    def _marginal(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._marginal_terms[np.searchsorted(self._marginal_cdf, rng.random(n) * self._marginal_cdf[-1])]

    def sample(self, gene: str, rng: np.random.Generator) -> SyntheticPatient:
        cfg = self.config
        terms, logw = self._terms[gene], self._logw[gene]
        n = min(len(terms), int(rng.integers(cfg.min_terms, cfg.max_terms + 1)))
        # Weighted sampling without replacement (Gumbel top-k): frequent terms are drawn more often.
        keys = logw - np.log(-np.log(rng.random(len(terms))))
        chosen = terms[np.argpartition(-keys, n - 1)[:n]] if n < len(terms) else terms
        present = []
        for term in chosen:
            u = rng.random()
            if u < cfg.ancestor_rate:
                ancestors = self._proper_ancestors(term)
                if ancestors:
                    term = ancestors[int(rng.integers(len(ancestors)))]
            elif u < cfg.ancestor_rate + cfg.descendant_rate:
                for _ in range(int(rng.integers(1, 3))):  # one or two levels down
                    children = self._children.get(term)
                    if not children:
                        break
                    term = children[int(rng.integers(len(children)))]
            present.append(str(term))
        closure = None
        n_noise = int(rng.poisson(cfg.noise_mean)) if cfg.noise_mean > 0 else 0
        if n_noise:
            closure = self.closure(gene)
            present += [str(t) for t in self._marginal(rng, n_noise * 2) if t not in closure][:n_noise]
        absent: list[str] = []
        if rng.random() < cfg.absent_rate:
            m = int(rng.integers(1, cfg.max_absent + 1))
            n_own = int(rng.binomial(m, cfg.annotated_absent_rate))
            shown = set(present)
            own = self._excluded[gene] + [str(t) for t in terms if t not in shown]
            if n_own and own:
                # The gene's own features marked absent (as in curated case reports, any frequency).
                picks = rng.choice(len(own), size=min(n_own, len(own)), replace=False)
                absent += [own[i] for i in picks]
            if m - n_own > 0:
                closure = closure if closure is not None else self.closure(gene)
                absent += [str(t) for t in self._marginal(rng, (m - n_own) * 3) if t not in closure][: m - n_own]
            shown = set(present)
            absent = [t for t in dict.fromkeys(absent) if t not in shown]
        return SyntheticPatient(gene, tuple(dict.fromkeys(present)), tuple(absent))

    def batch(self, rng: np.random.Generator, size: int, genes: list[str] | None = None) -> list[SyntheticPatient]:
        """``size`` patients of genes drawn uniformly from ``genes`` (default: every annotated gene)."""
        pool = genes or self.genes
        return [self.sample(pool[int(i)], rng) for i in rng.integers(len(pool), size=size)]
