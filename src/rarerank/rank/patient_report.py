"""A one-page HTML report per patient: terms, top genes (model and union rule side by side), evidence per gene.

Layer ``rank``: imports only the predictions contract and the evidence. The page is self-contained
(inline CSS, no script, no network) and deterministic (no timestamps), so it can be mailed, archived
and diffed. Bars show the model's probability of each gene among the candidates (``exp(score)``; the
longest bar is the top gene) and each term's signed contribution to a gene's score.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence

from rarerank.core.rankings import RankedGene
from rarerank.rank.evidence import (
    AGAINST,
    FOR,
    MATCHES,
    MATCHES_ABSENT,
    NEUTRAL,
    NO_MATCH,
    NOT_ANNOTATED,
    NOT_READ,
    TERM,
    CaseEvidence,
    GeneEvidence,
    TermEvidence,
)

REPORT_GENES = 10  # genes shown with bars and evidence

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#1b1f24;
font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:4px 0}
.note{background:#fff4d6;border:1px solid #e0b44c;padding:8px 12px;border-radius:6px;margin:10px 0}
.meta{color:#57606a;font-size:12px}.cols{display:flex;gap:24px}.cols>div{flex:1}.wide{flex:1.6!important}
table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;text-align:left;vertical-align:top;border-bottom:1px solid #eaeef2}
th{font-size:12px;color:#57606a;font-weight:600}.id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#57606a}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{background:#2f81f7;height:14px;border-radius:3px}.barcell{width:30%}
.pos{background:#1a7f37;height:12px;border-radius:2px;margin-left:50%}.neg{background:#cf222e;height:12px;border-radius:2px;margin-left:auto;margin-right:50%}
.axis{width:150px;position:relative;border-left:0}
.for{color:#1a7f37}.against{color:#cf222e}.neutral,.no_match,.not_read,.gene_not_annotated{color:#57606a}
.part td{color:#57606a;font-style:italic}.expected{background:#fff8c5}
details{margin:6px 0;border:1px solid #d0d7de;border-radius:6px;padding:6px 10px}summary{font-weight:600;cursor:pointer}
"""

READING = {
    FOR: "pushes the gene up",
    AGAINST: "pushes the gene down",
    NEUTRAL: "about neutral",
    NOT_READ: "not read by the model (no token, or beyond the prompt limits)",
    "": "",
}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _terms_table(terms: Sequence[str], label: Callable[[str], str], empty: str) -> str:
    if not terms:
        return f"<p class='meta'>{_e(empty)}</p>"
    rows = "".join(f"<tr><td class='id'>{_e(t)}</td><td>{_e(label(t))}</td></tr>" for t in terms)
    return f"<table>{rows}</table>"


def probability(gene: RankedGene) -> float:
    """The model's probability of the gene among the candidates (``exp(score)`` with decode_k 1)."""
    return math.exp(gene.score)


def _percent(p: float) -> str:
    return f"{100 * p:.3g}%" if p >= 1e-5 else f"{100 * p:.1e}%"


def _model_table(genes: Sequence[GeneEvidence], probabilities: bool) -> str:
    """The model's genes: bars proportional to the probability (the top gene's bar is full width)."""
    top = max((probability(g.gene) for g in genes), default=1.0) if probabilities else 1.0
    rows = []
    for g in genes:
        p = probability(g.gene)
        width = 100 * p / top if probabilities and top > 0 else 0.0
        bar = f"<div class='bar' style='width:{max(width, 0.5):.1f}%'></div>" if probabilities else ""
        value = _percent(p) if probabilities else f"{g.gene.score:.4g}"
        disease = f"{_e(g.diseases[0][1])} <span class='id'>{_e(g.diseases[0][0])}</span>" if g.diseases else ""
        union = "<span class='meta'>not annotated</span>" if g.union_rank is None else str(g.union_rank)  # rule: annotated genes
        rows.append(
            f"<tr><td class='num'>{g.gene.rank}</td><td><b>{_e(g.gene.gene_symbol)}</b></td><td class='barcell'>{bar}</td>"
            f"<td class='num' data-probability='{p:.6g}' data-width='{width:.3f}'>{value}</td><td class='num'>{union}</td>"
            f"<td>{disease}</td></tr>"
        )
    head = ("<tr><th>rank</th><th>gene</th><th colspan='2'>" + ("probability" if probabilities else "score") +
            "</th><th>union rule rank</th><th>top disease</th></tr>")  # fmt: skip
    return f"<table id='genes'>{head}{''.join(rows)}</table>"


def _union_table(union: Sequence[RankedGene], model_rank: Mapping[str, int], shown_k: int) -> str:
    rows = "".join(
        f"<tr><td class='num'>{g.rank}</td><td><b>{_e(g.gene_symbol)}</b></td><td class='num'>{g.score:.3f}</td>"
        f"<td class='num'>{model_rank.get(g.gene_symbol, f'>{shown_k}')}</td></tr>"
        for g in union
    )
    head = "<tr><th>rank</th><th>gene</th><th>score</th><th>model rank</th></tr>"
    return f"<table id='union'>{head}{rows}</table>"


def _contribution_bar(value: float | None, scale: float) -> str:
    if value is None:
        return "<td class='axis'></td><td class='num'></td>"
    width = min(50.0, 50 * abs(value) / scale) if scale > 0 else 0.0
    kind = "pos" if value >= 0 else "neg"
    return f"<td class='axis'><div class='{kind}' style='width:{max(width, 0.5):.1f}%'></div></td><td class='num'>{value:+.2f}</td>"


def clinical_reading(r: TermEvidence) -> str:
    """What the annotation says about the gene for this patient: ``for`` (an observed feature the gene's diseases show,
    or an excluded one they lack), ``against`` (the reverse) or ``""`` (no match)."""
    if r.annotation not in (MATCHES, MATCHES_ABSENT):
        return ""
    return FOR if (r.annotation == MATCHES) != r.excluded else AGAINST


def _annotation_text(r: TermEvidence) -> str:
    if r.annotation in (MATCHES, MATCHES_ABSENT):
        via = "" if r.via_term == r.term_id else f" through <span class='id'>{_e(r.via_term)}</span> {_e(r.via_label)}"
        freq = "" if r.frequency is None else f", frequency {100 * r.frequency:.0f}%"
        if r.annotation == MATCHES_ABSENT:
            freq = ", frequency 0%: HPO records the feature as absent in the gene's diseases"
            freq += "" if r.excluded else ", so it speaks against the gene"
        elif r.excluded:
            freq += ": the gene's diseases show this feature, so its absence speaks against the gene clinically"
        return (f"<span class='{clinical_reading(r)}'>annotation <span class='id'>{_e(r.matched_annotation)}</span> "
                f"{_e(r.matched_annotation_label)}{via} (IC {r.ic:.2f}{freq})</span>")  # fmt: skip
    text = {NO_MATCH: "no annotation of the gene matches", NOT_ANNOTATED: "the gene has no HPO annotation"}.get(r.annotation, "")
    return f"<span class='{_e(r.annotation)}'>{_e(text)}</span>"


def _reading(r: TermEvidence, absent_weight: float | None) -> str:
    text = READING.get(r.effect, r.effect)
    if r.excluded and absent_weight is not None and r.effect in (FOR, AGAINST, NEUTRAL):
        text += f"; the model reads an excluded term like an observed one (weight {absent_weight:.2f})"
    return f"<span class='{_e(r.effect)}'>{_e(text)}</span>"


def _summary(g: GeneEvidence) -> str:
    terms = [r for r in g.rows if r.part == TERM and r.contribution is not None]
    pushes = [r for r in terms if r.effect == FOR][:3]
    pulls = sorted((r for r in terms if r.effect == AGAINST), key=lambda r: r.contribution)[:2]
    parts = []
    if pushes:
        parts.append("for: " + ", ".join(f"{_e(r.term_label)} {r.contribution:+.2f}" for r in pushes))
    if pulls:
        parts.append("against: " + ", ".join(f"{_e(r.term_label)} {r.contribution:+.2f}" for r in pulls))
    return " · ".join(parts)


def _evidence_block(g: GeneEvidence, absent_weight: float | None, probabilities: bool) -> str:
    values = [abs(r.contribution) for r in g.rows if r.contribution is not None]
    scale = max(values, default=1.0)
    lines = []
    for r in g.rows:
        if r.part == TERM:
            kind = "excluded" if r.excluded else "observed"
            lines.append(f"<tr><td>{kind}</td><td class='id'>{_e(r.term_id)}</td><td>{_e(r.term_label)}</td>"
                         f"{_contribution_bar(r.contribution, scale)}<td>{_reading(r, absent_weight)}</td>"
                         f"<td>{_annotation_text(r)}</td></tr>")  # fmt: skip
        else:
            lines.append(f"<tr class='part'><td colspan='3'>{_e(r.term_label)}</td>{_contribution_bar(r.contribution, scale)}"
                         f"<td colspan='2'></td></tr>")  # fmt: skip
    if g.total is not None:
        lines.append(f"<tr class='part'><td colspan='3'><b>total, relative to the average candidate gene</b></td>"
                     f"{_contribution_bar(g.total, scale)}<td colspan='2'></td></tr>")  # fmt: skip
    diseases = "; ".join(f"{_e(name) or 'unnamed'} <span class='id'>{_e(d)}</span> ({m} observed term(s) matched)"
                         for d, name, m in g.diseases)  # fmt: skip
    head = ("<tr><th></th><th>term</th><th>label</th><th colspan='2'>contribution (logits)</th><th>how the model reads it</th>"
            "<th>HPO annotation of the gene</th></tr>")  # fmt: skip
    p = f" — {_percent(probability(g.gene))}" if probabilities else ""
    return (
        f"<details{' open' if g.gene.rank <= 3 else ''}><summary>{g.gene.rank}. {_e(g.gene.gene_symbol)}{p}"
        f"<span class='meta'> · {_summary(g)}</span></summary>"
        + (f"<p class='meta'>Diseases: {diseases}</p>" if diseases else "")
        + f"<table>{head}{''.join(lines)}</table></details>"
    )


def render_report(evidence: CaseEvidence, label: Callable[[str], str], meta: Mapping[str, str], probabilities: bool = True) -> str:
    """The HTML page of one patient; ``meta`` holds model, HPO version and settings shown at the bottom.

    ``probabilities``: the scores are log-probabilities (decode_k 1), so bars and numbers show exp(score)."""
    case, genes = evidence.case, evidence.genes
    absent = [r.term_id for r in genes[0].rows if r.part == TERM and r.excluded] if genes else list(case.absent)
    model_rank = {g.gene.gene_symbol: g.gene.rank for g in genes}
    evidence_html = "".join(_evidence_block(g, evidence.absent_weight, probabilities) for g in genes) or "<p class='meta'>none</p>"
    meta_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
    model, hpo_version = _e(meta.get("model", "")), _e(meta.get("HPO version", ""))
    candidates = meta.get("candidate genes", "").split(" ")[0] or meta.get("genes in model", "all")
    decomposed = evidence.absent_weight is not None
    how = ("Each term's bar is its contribution to the gene's score relative to the average candidate gene (green pushes the "
           "gene up, red down); the lines below the terms are the parts of the score that are not one term's, and the "
           "total is the gene's log-odds against the average candidate." if decomposed else
           "This model has no phenotype prior: its score is not decomposed by term (the transformer line is the whole score); "
           "the annotation column shows which of the gene's HPO annotations each term matches.")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>rarerank: {_e(case.case_id)}</title><style>{CSS}</style></head>
<body>
<h1>Candidate genes for {_e(case.case_id)}</h1>
<div class="meta">rarerank gene ranking from HPO phenotypes · model {model} · HPO {hpo_version}</div>
<div class="note"><b>Research use only, not for clinical decisions.</b> The ranking is a statistical
suggestion from phenotype terms; it has not been validated for diagnosis. Confirm any candidate with
the patient's genetic findings and a clinical geneticist.</div>
<div class="cols"><div><h2>Observed terms ({len(case.present)})</h2>{_terms_table(case.present, label, "none")}</div>
<div><h2>Excluded terms ({len(absent)})</h2>{_terms_table(absent, label, "none given")}</div></div>
<div class="cols"><div class="wide"><h2>Model: top {len(genes)} genes</h2>{_model_table(genes, probabilities)}</div>
<div><h2>Union rule: top {len(evidence.union)}</h2>{_union_table(evidence.union, model_rank, len(genes))}</div></div>
<p class="meta">Probability: the model's softmax over the {_e(candidates)} candidate genes (it sums to 1 over them; the
longest bar is the top gene). It is not calibrated: it is not the chance that the gene is the diagnosis. Union rule:
Phenomizer over the observed and excluded terms (mean best Resnik similarity, specificity tie-break), the strongest
similarity rule reading the same input; read the two lists together, above all for a gene with no published case.</p>
<h2>Evidence per gene</h2>
<p class="meta">{how} In curated case reports excluded terms are often typical features of the true disease, and a model
trained on them reads an excluded feature as a hint for the genes that have it; the annotation column says what the
feature means clinically.</p>
{evidence_html}
<h2>Run</h2><table class="meta">{meta_rows}</table>
</body></html>
"""


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_file_name(case_id: str, taken: set[str]) -> str:
    """A safe, unique ``<case id>.html`` (no path separators, no leading dot)."""
    stem = _UNSAFE.sub("_", case_id).strip("._") or "patient"
    name, n = f"{stem[:100]}.html", 2
    while name in taken:
        name, n = f"{stem[:100]}_{n}.html", n + 1
    taken.add(name)
    return name
