"""A Hugging Face model card (``README.md``) for every saved model folder.

Layer ``model``: imports only file helpers (the policy calls :func:`write_model_card` when it saves, with
plain values). The card says what the model is, what it was trained on, its measured quality (a metrics
table with confidence intervals and a ``model-index`` once ``rarerank model-card --summary`` adds the
evaluation), what it is for (research, not clinical use), its limits, and how to rank genes with it.

Its snippet calls :func:`rarerank.rank_genes`, which gives exactly the rows ``rarerank predict`` writes (the
phenotype prior included; a test runs the snippet). The prior is not shipped as Hugging Face custom code:
it reads the HPO arrays saved beside the weights with rarerank's one implementation, which training,
``predict`` and the card share. A model without the prior also gets a plain-``transformers`` snippet, which
ranks as ``predict`` does when ``decode_k`` is 1 (tested too).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rarerank.core.fileio import atomic_write

CARD_FILE = "README.md"
TAGS = ("rare-disease", "gene-prioritization", "human-phenotype-ontology", "phenopackets", "causal-lm", "research-only")
STAGES = {
    "pretrain": "knowledge pretraining on synthetic patients sampled from HPO gene annotations",
    "sft": "supervised fine-tuning on published case reports (phenopacket-store), after knowledge pretraining",
    "rft": "reinforcement fine-tuning (GRPO against a rank grader), after pretraining and SFT",
}
METRIC_ORDER = ("top1", "top3", "top10", "mrr", "grader", "rankable")
# How the card names an evaluation: which genes its cases have, relative to the training cases.
STRATEGY_TEXT = {
    "random": "random split: genes seen in training",
    "publication": "by publication: papers unseen",
    "gene": "gene-disjoint split: genes unseen in training",
}
TABLE_METRICS = (("top1", "top-1"), ("top10", "top-10"), ("mrr", "MRR"), ("macro_top1", "per-gene top-1"),
                 ("macro_top10", "per-gene top-10"))  # fmt: skip

SNIPPET = """import math
import rarerank  # this project's package: the ranking includes the phenotype prior

ranking = rarerank.rank_genes("{path}", present=["HP:0001250", "HP:0001263"], absent=["HP:0000365"])
for gene in ranking[:10]:
    print(gene.rank, gene.gene_symbol, f"{{math.exp(gene.score):.3%}}")  # probability among the candidates
"""

PLAIN_SNIPPET = """import csv, torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = "{path}"
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
with open(f"{{path}}/genes.tsv", newline="") as f:
    genes = [row["gene_symbol"] for row in csv.DictReader(f, delimiter="\\t")]
gene_ids = torch.tensor(tok.convert_tokens_to_ids(genes))

present, absent = ["HP:0001250", "HP:0001263"], ["HP:0000365"]  # observed and excluded HPO terms
prompt = " ".join(["<bos>", "<present>", *present, *(["<absent>", *absent] if absent else []), "<answer>"])
enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
with torch.no_grad():
    logits = model(**enc).logits[0, -1, gene_ids]  # first answer position, gene tokens only
scores = torch.log_softmax(logits.float(), dim=-1)  # log-probability of each gene
ranking = [(genes[i], float(scores[i])) for i in scores.argsort(descending=True, stable=True)[:10]]
print(ranking)
"""


def _yaml_list(items: Sequence[str]) -> str:
    return "".join(f"\n- {item}" for item in items)


def _value(row: Mapping[str, str] | None) -> str:
    if row is None:
        return "–"
    low, high = row.get("ci_low"), row.get("ci_high")
    ci = f" ({float(low):.3f}–{float(high):.3f})" if low not in (None, "", "nan") and high not in (None, "", "nan") else ""
    return f"{float(row['value']):.3f}{ci}"


def _evaluations(metrics: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], dict[str, Mapping[str, str]]]:
    """(strategy, set) -> metric -> summary row, test sets first."""
    table: dict[tuple[str, str], dict[str, Mapping[str, str]]] = {}
    for row in metrics:
        table.setdefault((row["strategy"], row["set"]), {})[row["metric"]] = row
    order = {s: i for i, s in enumerate(STRATEGY_TEXT)}
    return dict(sorted(table.items(), key=lambda kv: (kv[0][1] != "test", order.get(kv[0][0], len(order)), kv[0])))


def _metrics_table(metrics: Sequence[Mapping[str, str]], release: bool = False) -> str:
    if not metrics:
        return ("No evaluation is recorded in this folder yet. After a pipeline run, `rarerank model-card --model DIR --summary "
                "results/metrics/summary.tsv --method M --strategy S` adds the held-out metrics here (top-k and MRR per "
                "case and per gene, with 95% bootstrap CIs) and as a `model-index`.\n")  # fmt: skip
    head = "| evaluation | cases | " + " | ".join(name for _, name in TABLE_METRICS) + " | genes |"
    lines = [head, "|" + "---|" * (len(TABLE_METRICS) + 3)]
    for (strategy, case_set), rows in _evaluations(metrics).items():
        cases = next((r.get("n", "") for k, r in rows.items() if not k.startswith("macro_")), "")
        genes = next((r.get("n", "") for k, r in rows.items() if k.startswith("macro_")), "")
        label = f"{STRATEGY_TEXT.get(strategy, strategy)}, {case_set}"
        lines.append(f"| {label} | {cases} | " + " | ".join(_value(rows.get(m)) for m, _ in TABLE_METRICS) + f" | {genes} |")
    about = ("Values with 95% bootstrap confidence intervals. Per case: the share of cases whose gene is ranked first "
             "(top-1) or in the first ten (top-10), and the mean reciprocal rank; per gene: the same averaged over genes "
             "first, so genes with many case reports do not dominate.")  # fmt: skip
    if release:
        about = ("**Accuracy to expect for a new patient.** This folder was trained on every case, so no case is held out "
                 "from it (its model selection read those same cases); these are the held-out numbers of the same recipe "
                 "trained without the test cases, one model per split. This folder read the full HPO knowledge (gene "
                 "annotations from every paper); each held-out model read knowledge pruned of the annotations that "
                 "rest only on its evaluated cases' papers, so its numbers do not credit the model with annotations taken "
                 "from the patients being ranked. A patient whose gene has published cases is closest to the random "
                 "split; a gene with no published case, to the gene-disjoint split. " + about)  # fmt: skip
    return "\n".join(lines) + "\n\n" + about + "\n"


def _model_index(metrics: Sequence[Mapping[str, str]], name: str) -> str:
    """The Hugging Face ``model-index`` front matter of the metrics (one result per evaluated case set)."""
    if not metrics:
        return ""
    out = [f"model-index:\n- name: {json.dumps(name)}\n  results:"]
    for (strategy, case_set), rows in _evaluations(metrics).items():
        dataset = json.dumps(f"phenopacket-store, {STRATEGY_TEXT.get(strategy, strategy)}")
        out.append(f"  - task:\n      type: gene-prioritization\n      name: Gene prioritisation from HPO phenotypes\n"
                   f"    dataset:\n      type: phenopacket-store\n      name: {dataset}\n"
                   f"      split: {case_set}\n    metrics:")  # fmt: skip
        for metric, _ in TABLE_METRICS:
            if metric in rows:
                out.append(f"    - type: {metric}\n      value: {float(rows[metric]['value']):.4f}")
    return "\n".join(out) + "\n"


def _best_step(fields: Mapping) -> str | None:
    """What the kept step means: step 0 is the starting weights (no step beat them on validation); SFT's
    fallback fit (``fallback_fit``) competes with the loop's best and may be what the folder holds."""
    stage, best = fields.get("stage"), fields.get("best_step", (fields.get("summary") or {}).get("best_step"))
    if best is None:
        return None
    fallback = fields.get("fallback_fit") if isinstance(fields.get("fallback_fit"), dict) else None
    kept = bool(fallback) and fallback.get("kept", True)  # older folders ran the fit only when it was kept
    steps = fields.get("steps", (fields.get("summary") or {}).get("steps", "?"))
    if best != 0 and kept:
        text = f"not a loop step: SFT's best was step {best} of {steps}"
    elif best != 0:
        text = f"step {best} of {steps} (best on validation)"
    else:
        text = "0 — " + {"sft": "no SFT step beat the starting model on validation",
                         "rft": "no RFT step beat the SFT model on validation, so this folder holds the SFT model's weights"}.get(
            stage, "no step beat the starting weights on validation, so they were kept")  # fmt: skip
    if fallback:
        metric, value = next(iter((fallback.get("best_validation") or {"score": float("nan")}).items()))
        fit = (f"the fallback fit ({fallback.get('fallback')}: only the phenotype prior's scalars and the gain of the transformer's "
               f"logits, from the starting weights, transformer frozen) reached validation {metric} {value:.3f} at its step "
               f"{fallback.get('best_step')} of {fallback.get('steps')}")  # fmt: skip
        text += f"; {fit}, better, so this folder holds those weights" if kept else f"; {fit}, not better, so it was not kept"
    elif best == 0 and stage == "sft":
        text += ", so its weights were kept"
    return text + "."


def _training(fields: Mapping) -> str:
    stage = str(fields.get("stage", "unknown"))
    lines = [f"- **Stage**: {stage} — {STAGES.get(stage, 'see provenance.json')}."]
    for key, text in (("inputs", "Inputs"), ("train", "Training cases"), ("validation", "Validation cases (early stopping)"),
                      ("base_model", "Started from"), ("start_model", "Started from"), ("hpo_version", "HPO release"),
                      ("training_cases", "Training cases used"), ("validation_cases", "Validation cases"),
                      ("steps", "Steps"), ("seed", "Seed"), ("git_commit", "Code (git commit)")):  # fmt: skip
        if fields.get(key) not in (None, "", [], {}):
            value = ", ".join(map(str, fields[key])) if isinstance(fields[key], (list, tuple)) else fields[key]
            lines.append(f"- **{text}**: `{value}`")
    best = _best_step(fields)
    if best:
        lines.append(f"- **Best step (kept)**: {best}")
    sections = (
        ("final_metrics", "Held-out synthetic patients at the end of pretraining"),
        ("best_validation", "Best validation score (model selection)"),
        ("base_validation", "Validation of the starting model"),
        ("summary", "RFT summary"),
    )
    if isinstance(fields.get("fallback_fit"), dict) and fields["fallback_fit"].get("kept", True):
        sections = sections[:1] + sections[2:]  # the best step says which selection the kept weights won
    for key, text in sections:
        if isinstance(fields.get(key), dict) and fields[key]:
            values = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields[key].items())
            lines.append(f"- **{text}**: {values}")
    return "\n".join(lines) + "\n"


def _how_to_rank(settings: Mapping, path: str) -> str:
    decode_k = int(settings.get("decode_k", 1))
    text = f"""With rarerank, from Python: the rows `rarerank predict` writes, same order and scores.

```python
{SNIPPET.format(path=path).rstrip()}
```

From the command line (maps alt/obsolete ids, QC, candidate gene lists, evidence per gene, an HTML report):

```bash
rarerank predict --model {path} --hpo "HP:0001250 HP:0001263" --absent HP:0000365 --html report/
```

A gene's probability is the model's softmax over the candidate genes (all of them, or a `--genes` list); it is not
calibrated: it is not the chance that the gene is the diagnosis.
"""
    if settings.get("prior", "none") != "none":
        return (
            text
            + """
This model adds a phenotype prior to the transformer's gene logits (the union Resnik similarity with learned
scalars, saved in `phenotype_prior.safetensors`). Plain `AutoModelForCausalLM.from_pretrained` loads the
transformer alone, whose logits are the prior's correction, not the model's ranking: rank with rarerank.
"""
        )
    same = ("This is exactly the ranking `rarerank predict` writes (`decode_k` is 1: genes are ranked by the first-step "
            "distribution)." if decode_k == 1 else
            f"This model's `decode_k` is {decode_k}: `rarerank predict` lists the first {decode_k} genes by greedy "
            "constrained decoding and the rest in this first-step order, so its top genes can differ.")  # fmt: skip
    return (
        text
        + f"""
With plain `transformers` (no rarerank code; this model has no phenotype prior):

```python
{PLAIN_SNIPPET.format(path=path).rstrip()}
```

{same}
"""
    )


def model_card(
    settings: Mapping,
    n_genes: int,
    n_terms: int,
    fields: Mapping | None = None,
    metrics: Sequence[Mapping[str, str]] = (),
    path: str = "path/to/this/folder",
    release: bool = False,
) -> str:
    """The README.md text of one model folder (``settings``: the policy settings; ``fields``: provenance;
    ``metrics``: summary rows; ``release``: the folder users rank new patients with)."""
    fields = dict(fields or {})
    stage = fields.get("stage", "model")
    title = f"rarerank release model ({stage}, trained on every case)" if release else f"rarerank gene ranker ({stage})"
    return f"""---
library_name: transformers
license: other
license_name: mit-code-hpo-and-cc-by-4.0-data
tags:{_yaml_list(TAGS)}
{_model_index(metrics, "rarerank-release" if release else f"rarerank-{stage}")}---

# {title}

**What it is.** A small Llama-style causal language model (`LlamaForCausalLM`, hidden size
{settings.get("hidden_size")}, {settings.get("num_layers")} layers, {settings.get("num_heads")} heads) with a word-level
tokenizer in which every HPO term ({n_terms:,} terms) and every gene symbol ({n_genes:,} genes) is one token, plus
{
        "a phenotype prior (the union Resnik similarity of the patient's terms to each gene's HPO annotations, with learned "
        "scalars) added to its gene logits"
        if settings.get("prior", "none") != "none"
        else "no phenotype prior"
    }. Given a
patient's observed (and optionally excluded) HPO phenotype terms it ranks candidate genes. Built by the rarerank
pipeline.

**Research use only, not clinical.** The model has not been validated for diagnosis; rankings are
statistical suggestions to prioritise review by people, never a diagnosis.

## Training data and split

{_training(fields)}
Case reports come from the GA4GH phenopacket-store (CC BY 4.0); gene–phenotype annotations from the Human Phenotype
Ontology (HPO license: free use with attribution). `provenance.json` beside the weights records every input, setting
and package version; `training_log.tsv` the training curve.

## Metrics

{_metrics_table(metrics, release)}
## Intended use

Ranking candidate genes for research on rare-disease phenotypes: benchmarking, prioritising a gene list for expert
review, teaching. Not for clinical decisions, not for patients outside research protocols.

## Limitations

- **Curation shortcut.** In curated case reports, excluded (absent) terms are mostly typical features of the true
  disease that the authors ruled out; a model trained on them learns that an excluded term points *towards* genes
  that have it. On a patient whose excluded terms were not chosen that way, rank with `--present-only` as well and
  compare.
- Genes absent from the vocabulary cannot be ranked; genes seen only in case reports, or never, are ranked from little
  or no knowledge. Performance on genes with no published case in training is much lower (the gene-disjoint split).
- Terms are HPO ids (HPO {fields.get("hpo_version", "release of the training run")}); ids the tokenizer does not
  know are not read (and reported). Prompts keep at most {settings.get("max_present_terms")} observed and
  {settings.get("max_absent_terms")} excluded terms.
- Trained on published cases, which over-represent severe, early-onset and well-described presentations.

## How to rank

{_how_to_rank(settings, path)}"""


def write_model_card(
    folder: str | os.PathLike,
    settings: Mapping,
    n_genes: int,
    n_terms: int,
    fields: Mapping | None = None,
    metrics: Sequence[Mapping[str, str]] = (),
    release: bool = False,
) -> Path:
    """Write ``README.md`` into a model folder (inside the policy's temporary folder when saving)."""
    path = Path(folder) / CARD_FILE
    with atomic_write(path) as handle:
        handle.write(model_card(settings, n_genes, n_terms, fields, metrics, release=release))
    return path


def read_summary_metrics(path: str | os.PathLike, method: str, strategies: Sequence[str], sets: Sequence[str] = ("test",)) -> list[dict]:
    """The rows of an evaluation ``summary.tsv`` for one method, its split strategies and case sets, in a stable order.

    Raises ValueError naming what is missing: a strategy or set without rows is an error, not a shorter table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics summary not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t")
                if r.get("method") == method and r.get("strategy") in strategies and r.get("set") in sets]  # fmt: skip
    found = {(r["strategy"], r["set"]) for r in rows}
    missing = [f"{s}/{c}" for s in strategies for c in sets if (s, c) not in found]
    if missing:
        raise ValueError(f"{path}: no rows for method {method!r} and {', '.join(missing)}")
    order = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(rows, key=lambda r: (r["strategy"], r["set"], order.get(r["metric"], len(order)), r["metric"]))


def refresh_model_card(
    folder: str | os.PathLike, metrics: Sequence[Mapping[str, str]] = (), release: bool = False, output: str | os.PathLike | None = None
) -> Path:
    """Rewrite a saved folder's card from its own files (settings, genes, provenance), adding ``metrics``;
    with ``output``, write a copy of the folder there with the new card instead (a new folder, all or nothing)."""
    import shutil

    folder = Path(folder)
    settings = json.loads((folder / "rarerank_policy.json").read_text(encoding="utf-8")).get("policy", {})
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    n_terms = sum(1 for token in vocab if token.startswith("HP:"))
    with open(folder / "genes.tsv", encoding="utf-8", newline="") as handle:
        n_genes = sum(1 for _ in csv.DictReader(handle, delimiter="\t"))
    record = folder / "provenance.json"
    fields = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    if output is None:
        return write_model_card(folder, settings, n_genes, n_terms, fields, metrics, release)
    output = Path(output)
    if output.exists():
        raise ValueError(f"{output}: exists; the copy with the new card goes to a new folder")
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp)
    try:
        write_model_card(tmp, settings, n_genes, n_terms, fields, metrics, release)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output / CARD_FILE
