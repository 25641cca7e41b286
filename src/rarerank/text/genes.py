"""Gene mentions in a case report: which HGNC symbol the variant language points to.

Layer ``text`` (no project imports; used by :mod:`rarerank.text.extract`).

HGNC symbols from the annotation universe, matched case-sensitively; each mention is weighted by
nearby variant language (c./p. notation, "variant", "de novo", "homozygous"); symbols that are
English words or clinical abbreviations (SET, CAT, WAS, HR) count only in variant context;
mentions in a negated clause ("SET was not affected") do not count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[A-Za-z0-9]+")

VARIANT_CUES = frozenset(
    "variant variants mutation mutations pathogenic likely de novo homozygous heterozygous hemizygous "
    "compound biallelic monoallelic frameshift nonsense missense splice splicing deletion deletions "
    "duplication insertion truncating stop substitution expansion genotype genotyping sequencing exome "
    "genome allele alleles carrier carried gene exon intron".split()
)
_HGVS = re.compile(r"\b[cgpm]\.\(?[-*A-Z0-9]")
_GENE_TOKEN = re.compile(r"(?<![A-Za-z0-9-])[A-Z][A-Za-z0-9]*[A-Z0-9](?:-[A-Z0-9]+)?(?![A-Za-z0-9])")
# Symbols that are English words, units or common clinical abbreviations: they count as a gene only
# next to gene/variant language ("a homozygous HR variant", not "HR at rest was 92").
AMBIGUOUS_SYMBOLS = frozenset(
    "AR AD CP HR FH PC GK CAT MAX SET WAS KIT REST MET ATM SMS IDS INS CAST ACE CAD GAL HAL DES FAS LAT "
    "MAG TNF CA CD IQ MR ALS APP COMP TANK CLOCK CAPS CHAT FAT FOS GLA KL KY PIGS POLE SPR TTR HBB CRH "
    "MS DMD AMH EPO LH FSH GH TSH PTH ALB AFP CRP BMP CT ECG EEG EMG MRI NMR PET LCT LPL CEL ASL APC DCC "
    "GSS ADA CBS ERG FLG HFE HPD GAN IVD LIPA NPC PTEN SDS".split()
) - {"PTEN", "DMD", "GLA", "TTR", "HBB"}  # unambiguous in case reports, kept out of the list


@dataclass(frozen=True)
class GeneMention:
    symbol: str
    start: int
    end: int
    sentence_index: int
    weight: float
    rule: str


@dataclass(frozen=True)
class GeneCall:
    symbol: str  # "" when no gene was chosen
    status: str  # chosen / none / ambiguous
    scores: dict[str, float]
    mentions: tuple[GeneMention, ...]


def gene_mentions(text: str, sentences: Sequence[tuple[int, int]], genes: frozenset[str]) -> list[GeneMention]:
    """Every occurrence of a universe gene symbol, weighted by variant language nearby."""
    found = []
    for s_index, (s_start, s_end) in enumerate(sentences):
        sentence = text[s_start:s_end]
        lowered_words = [w.lower() for w in _TOKEN.findall(sentence)]
        has_hgvs = bool(_HGVS.search(sentence))
        cue_words = sum(1 for w in lowered_words if w in VARIANT_CUES)
        negated = bool(re.search(r"\b(not|no|negative|normal|unremarkable|excluded|unaffected)\b", sentence, re.I))
        for match in _GENE_TOKEN.finditer(sentence):
            symbol = match.group()
            if symbol not in genes:
                symbol = symbol.split("-")[0]
                if symbol not in genes:
                    continue
            before = sentence[max(0, match.start() - 40) : match.start()].lower()
            after = sentence[match.end() : match.end() + 40]
            adjacent = bool(
                re.match(
                    r"\s*(gene|variant|variants|mutation|mutations|c\.|p\.|exon|deletion|splice|frameshift|"
                    r"missense|nonsense|polyalanine|genotyping|stop|glycine|repeat|full|:)",
                    after,
                    re.I,
                )
                or re.search(
                    r"(variants?|mutations?|deletion|homozygous|heterozygous|hemizygous|sequencing|analysis|"
                    r"testing) (in|of) (the )?$",
                    before,
                )
                or re.search(
                    r"(heterozygous|homozygous|hemizygous|de novo|truncating|germline|missense|nonsense|"
                    r"frameshift|splice|recurrent|biallelic|including|of|in) $",
                    before,
                )
                or re.search(r"(heterozygous|homozygous|hemizygous|biallelic|truncating|germline) (\w+ )?(\w+ )?$", before)
            )
            ambiguous = symbol in AMBIGUOUS_SYMBOLS or len(symbol) <= 2
            local_negation = negated and re.search(
                r"\b(not|no|negative|normal|unremarkable|excluded)\b", before[-30:] + " " + after[:30].lower()
            )
            if local_negation and not (has_hgvs and adjacent):
                weight, rule = 0.0, "negated_clause"
            elif ambiguous and not adjacent:
                weight, rule = 0.0, "ambiguous_symbol_without_gene_context"
            else:
                weight = 1.0 + (2.0 if adjacent else 0.0) + (1.0 if has_hgvs else 0.0) + min(cue_words, 3) * 0.5
                rule = (
                    "+".join(
                        r
                        for r, on in (("adjacent_variant_word", adjacent), ("hgvs_in_sentence", has_hgvs), ("variant_words", cue_words > 0))
                        if on
                    )
                    or "symbol_only"
                )
            found.append(GeneMention(symbol, s_start + match.start(), s_start + match.end(), s_index, weight, rule))
    return found


def detect_gene(mentions: Sequence[GeneMention], margin: float = 2.0) -> GeneCall:
    """The gene the evidence points to; ``ambiguous`` when two candidates are close."""
    scores: Counter = Counter()
    for m in mentions:
        if m.weight > 0:
            scores[m.symbol] += m.weight
    if not scores:
        return GeneCall("", "none", {}, tuple(mentions))
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) > 1 and ranked[0][1] < margin * ranked[1][1]:
        return GeneCall("", "ambiguous", dict(ranked), tuple(mentions))
    return GeneCall(ranked[0][0], "chosen", dict(ranked), tuple(mentions))
