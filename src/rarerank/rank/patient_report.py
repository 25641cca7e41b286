"""A one-page HTML report per patient: terms, top genes with bars, evidence per gene, model and HPO version.

Layer ``rank``: imports only the predictions contract and the evidence rows. The page is self-contained
(inline CSS, no script, no network) and deterministic (no timestamps), so it can be mailed, archived
and diffed.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence

from rarerank.core.rankings import RankedGene
from rarerank.rank.evidence import AGAINST, CONSISTENT, NO_MATCH, NOT_ANNOTATED, SUPPORTS, TermEvidence

REPORT_GENES = 10  # genes shown with bars and evidence

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1b1f24;
font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.note{background:#fff4d6;border:1px solid #e0b44c;padding:8px 12px;border-radius:6px;margin:10px 0}
.meta{color:#57606a;font-size:12px}.cols{display:flex;gap:24px}.cols>div{flex:1}
table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;text-align:left;vertical-align:top;border-bottom:1px solid #eaeef2}
th{font-size:12px;color:#57606a;font-weight:600}.id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#57606a}
.bar{background:#2f81f7;height:14px;border-radius:3px}.barcell{width:45%}
.supports{color:#1a7f37}.against{color:#cf222e}.consistent,.no_match,.gene_not_annotated{color:#57606a}
details{margin:6px 0;border:1px solid #d0d7de;border-radius:6px;padding:6px 10px}summary{font-weight:600;cursor:pointer}
"""

EFFECT_TEXT = {
    SUPPORTS: "supports",
    NO_MATCH: "no annotation matches",
    AGAINST: "against: the gene's diseases usually show this excluded feature",
    CONSISTENT: "consistent: not a feature of the gene",
    NOT_ANNOTATED: "gene has no HPO annotation",
}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _terms_table(terms: Sequence[str], label: Callable[[str], str], empty: str) -> str:
    if not terms:
        return f"<p class='meta'>{_e(empty)}</p>"
    rows = "".join(f"<tr><td class='id'>{_e(t)}</td><td>{_e(label(t))}</td></tr>" for t in terms)
    return f"<table>{rows}</table>"


def _gene_rows(genes: Sequence[RankedGene]) -> str:
    """Bars: for log-probability scores (<= 0, the model) the likelihood relative to gene 1,
    exp(score - best); for other scores (baselines) the score relative to the best."""
    top = max((g.score for g in genes), default=0.0)
    log_scale = all(g.score <= 0 for g in genes)
    rows = []
    for g in genes:
        if log_scale:
            width = 100 * math.exp(g.score - top)
        else:
            width = 100 * g.score / top if top > 0 else 0.0
        rows.append(
            f"<tr><td>{g.rank}</td><td><b>{_e(g.gene_symbol)}</b></td><td class='id'>{_e(g.gene_identifier)}</td>"
            f"<td class='barcell'><div class='bar' style='width:{max(width, 0.5):.1f}%'></div></td><td>{g.score:.3g}</td></tr>"
        )
    scale = "likelihood relative to rank 1" if log_scale else "score relative to rank 1"
    head = f"<tr><th>rank</th><th>gene</th><th>identifier</th><th>{scale}</th><th>score</th></tr>"
    return f"<table id='genes'>{head}{''.join(rows)}</table>"


def _evidence_block(gene: RankedGene, rows: Sequence[TermEvidence]) -> str:
    support = sum(r.effect == SUPPORTS for r in rows)
    against = sum(r.effect == AGAINST for r in rows)
    lines = []
    for r in rows:
        if r.effect in (SUPPORTS, AGAINST):
            via = "" if r.via_term == r.term_id else f" through <span class='id'>{_e(r.via_term)}</span> {_e(r.via_label)}"
            freq = "" if r.frequency is None else f", frequency {100 * r.frequency:.0f}%"
            if r.frequency == 0:  # HPO records the feature as absent in the gene's diseases
                freq = ", frequency 0%: recorded as absent in the gene's diseases"
            detail = (f"annotation <span class='id'>{_e(r.matched_annotation)}</span> {_e(r.matched_annotation_label)}"
                      f"{via} (IC {r.ic:.2f}{freq})")  # fmt: skip
        else:
            detail = ""
        kind = "excluded" if r.excluded else "observed"
        lines.append(
            f"<tr><td>{kind}</td><td class='id'>{_e(r.term_id)}</td><td>{_e(r.term_label)}</td>"
            f"<td class='{_e(r.effect)}'>{_e(EFFECT_TEXT.get(r.effect, r.effect))}</td><td>{detail}</td></tr>"
        )
    head = "<tr><th></th><th>term</th><th>label</th><th>effect</th><th>matched annotation</th></tr>"
    return (
        f"<details{' open' if gene.rank <= 3 else ''}><summary>{gene.rank}. {_e(gene.gene_symbol)} — "
        f"{support} observed term(s) supported, {against} excluded term(s) against</summary>"
        f"<table>{head}{''.join(lines)}</table></details>"
    )


def render_report(
    case_id: str,
    present: Sequence[str],
    absent: Sequence[str],
    genes: Sequence[RankedGene],
    evidence: Mapping[str, Sequence[TermEvidence]],
    label: Callable[[str], str],
    meta: Mapping[str, str],
    n_genes: int = REPORT_GENES,
) -> str:
    """The HTML page of one patient; ``meta`` holds model, HPO version and settings shown at the bottom."""
    shown = list(genes[:n_genes])
    evidence_html = "".join(_evidence_block(g, evidence.get(g.gene_symbol, ())) for g in shown) or "<p class='meta'>none</p>"
    meta_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
    model, hpo_version = _e(meta.get("model", "")), _e(meta.get("HPO version", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>rarerank: {_e(case_id)}</title><style>{CSS}</style></head>
<body>
<h1>Candidate genes for {_e(case_id)}</h1>
<div class="meta">rarerank gene ranking from HPO phenotypes · model {model} · HPO {hpo_version}</div>
<div class="note"><b>Research use only, not for clinical decisions.</b> The ranking is a statistical
suggestion from phenotype terms; it has not been validated for diagnosis. Confirm any candidate with
the patient's genetic findings and a clinical geneticist.</div>
<div class="cols"><div><h2>Observed terms ({len(present)})</h2>{_terms_table(present, label, "none")}</div>
<div><h2>Excluded terms ({len(absent)})</h2>{_terms_table(absent, label, "none given")}</div></div>
<h2>Top {len(shown)} genes</h2>{_gene_rows(shown)}
<h2>Evidence per gene</h2>
<p class="meta">For each observed term: the gene's HPO annotation it matches and the common ancestor it matches
through, with that ancestor's information content (IC; higher is more specific). Excluded terms count against a gene
whose diseases usually show them. In curated case reports excluded terms are often typical features of the true
disease, and a model trained on them can learn that shortcut.</p>
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
