"""A Hugging Face model card (``README.md``) for every saved model folder.

Layer ``model``: imports only file helpers (the policy calls :func:`write_model_card` when it saves, with
plain values). The card says what the model is, what it was trained on, its measured quality (a metrics
table with confidence intervals once ``rarerank model-card --summary`` adds the evaluation), what it
is for (research, not clinical use), its limits, and how to load it and rank genes with plain
``transformers``. That snippet ranks by the first-step distribution restricted to gene tokens, which
is exactly ``rarerank predict`` when ``decode_k`` is 1 (the default); a test holds them equal.
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

SNIPPET = """import csv, torch
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


def _metrics_table(metrics: Sequence[Mapping[str, str]]) -> str:
    if not metrics:
        return ("No evaluation is recorded in this folder yet. The pipeline's `results/metrics/summary.tsv` holds "
                "top-k, MRR and grader scores with 95% bootstrap CIs for every method; "
                "`rarerank model-card --model DIR --summary results/metrics/summary.tsv --method M --strategy S` "
                "adds them here.\n")  # fmt: skip
    lines = ["| case set | metric | value | 95% CI | cases |", "|---|---|---|---|---|"]
    for row in metrics:
        ci = f"{float(row['ci_low']):.3f}–{float(row['ci_high']):.3f}" if row.get("ci_low") not in (None, "", "nan") else "–"
        lines.append(f"| {row['set']} | {row['metric']} | {float(row['value']):.3f} | {ci} | {row.get('n', '')} |")
    return "\n".join(lines) + "\n"


def _training(fields: Mapping) -> str:
    stage = str(fields.get("stage", "unknown"))
    lines = [f"- **Stage**: {stage} — {STAGES.get(stage, 'see provenance.json')}."]
    for key, text in (("inputs", "Inputs"), ("train", "Training cases"), ("validation", "Validation cases (early stopping)"),
                      ("base_model", "Started from"), ("start_model", "Started from"), ("hpo_version", "HPO release"),
                      ("training_cases", "Training cases used"), ("validation_cases", "Validation cases"),
                      ("steps", "Steps"), ("best_step", "Best step (kept)"), ("seed", "Seed"),
                      ("git_commit", "Code (git commit)")):  # fmt: skip
        if fields.get(key) not in (None, "", [], {}):
            value = ", ".join(map(str, fields[key])) if isinstance(fields[key], (list, tuple)) else fields[key]
            lines.append(f"- **{text}**: `{value}`")
    sections = (
        ("final_metrics", "Held-out synthetic patients at the end of pretraining"),
        ("best_validation", "Best validation score (model selection)"),
        ("base_validation", "Validation of the starting model"),
        ("summary", "RFT summary"),
    )
    for key, text in sections:
        if isinstance(fields.get(key), dict) and fields[key]:
            values = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields[key].items())
            lines.append(f"- **{text}**: {values}")
    return "\n".join(lines) + "\n"


def model_card(
    settings: Mapping,
    n_genes: int,
    n_terms: int,
    fields: Mapping | None = None,
    metrics: Sequence[Mapping[str, str]] = (),
    path: str = "path/to/this/folder",
) -> str:
    """The README.md text of one model folder (``settings``: the policy settings; ``fields``: provenance)."""
    fields = dict(fields or {})
    decode_k = int(settings.get("decode_k", 1))
    same = ("This is exactly the ranking `rarerank predict` writes (the model's `decode_k` is 1: genes are ranked by "
            "the first-step distribution)." if decode_k == 1 else
            f"This model's `decode_k` is {decode_k}: `rarerank predict` lists the first {decode_k} genes by greedy "
            "constrained decoding and the rest in this first-step order, so its top genes can differ; use "
            "`rarerank predict` for the model's own ranking.")  # fmt: skip
    if settings.get("prior", "none") != "none":
        same = ("This model adds a phenotype prior to these logits (the union Resnik similarity with learned scalars, "
                "saved in `phenotype_prior.safetensors`), which plain `transformers` does not load: the snippet gives "
                "the transformer's part only. Rank with `rarerank predict --model PATH` or "
                "`rarerank.model.policy.load_policy(PATH)`, which restore the prior.")  # fmt: skip
    return f"""---
library_name: transformers
license: other
license_name: mit-code-hpo-and-cc-by-4.0-data
tags:{_yaml_list(TAGS)}
---

# rarerank gene ranker ({fields.get("stage", "model")})

**What it is.** A small Llama-style causal language model (`LlamaForCausalLM`, hidden size
{settings.get("hidden_size")}, {settings.get("num_layers")} layers, {settings.get("num_heads")} heads) with a word-level
tokenizer in which every HPO term ({n_terms:,} terms) and every gene symbol ({n_genes:,} genes) is one token. Given a
patient's observed (and optionally excluded) HPO phenotype terms it ranks candidate genes. Built by the
rarerank pipeline; its README describes the method and every measured number.

**Research use only, not clinical.** The model has not been validated for diagnosis; rankings are
statistical suggestions to prioritise review by people, never a diagnosis.

## Training data and split

{_training(fields)}
Case reports come from the GA4GH phenopacket-store (CC BY 4.0); gene–phenotype annotations from the Human Phenotype
Ontology (HPO license: free use with attribution). `provenance.json` beside the weights records every input, setting
and package version; `training_log.tsv` the training curve.

## Metrics

{_metrics_table(metrics)}
## Intended use

Ranking candidate genes for research on rare-disease phenotypes: benchmarking, prioritising a gene list for expert
review, teaching. Not for clinical decisions, not for patients outside research protocols.

## Limitations

- **Curation shortcut.** In curated case reports, excluded (absent) terms are mostly typical features of the true
  disease that the authors ruled out; a model trained on them learns that an excluded term points *towards* genes
  that have it. On a patient whose excluded terms were not chosen that way, rank with `--present-only` as well and
  compare.
- Genes absent from the vocabulary cannot be ranked; genes seen only in case reports, or never, are ranked from little
  or no knowledge. Performance on genes with no published case in training is much lower (see the gene-disjoint split
  in the rarerank README).
- Terms are HPO ids only (HPO {fields.get("hpo_version", "release of the training run")}); ids the tokenizer does not
  know are skipped. Prompts keep at most {settings.get("max_present_terms")} observed and
  {settings.get("max_absent_terms")} excluded terms.
- Trained on published cases, which over-represent severe, early-onset and well-described presentations.

## How to load and rank

With rarerank (maps alt/obsolete ids, QC, candidate lists, evidence per gene, HTML report):

```bash
rarerank predict --model {path} --hpo "HP:0001250 HP:0001263" --absent HP:0000365 --html report/
```

With plain `transformers` (no rarerank code):

```python
{SNIPPET.format(path=path).rstrip()}
```

{same}
"""


def write_model_card(
    folder: str | os.PathLike,
    settings: Mapping,
    n_genes: int,
    n_terms: int,
    fields: Mapping | None = None,
    metrics: Sequence[Mapping[str, str]] = (),
) -> Path:
    """Write ``README.md`` into a model folder (inside the policy's temporary folder when saving)."""
    path = Path(folder) / CARD_FILE
    with atomic_write(path) as handle:
        handle.write(model_card(settings, n_genes, n_terms, fields, metrics))
    return path


def read_summary_metrics(path: str | os.PathLike, method: str, strategy: str) -> list[dict[str, str]]:
    """The rows of an evaluation ``summary.tsv`` for one method and split strategy, in a stable order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics summary not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r.get("method") == method and r.get("strategy") == strategy]
    if not rows:
        raise ValueError(f"{path}: no rows for method {method!r} and strategy {strategy!r}")
    order = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(rows, key=lambda r: (r["set"], order.get(r["metric"], len(order)), r["metric"]))


def refresh_model_card(folder: str | os.PathLike, metrics: Sequence[Mapping[str, str]] = ()) -> Path:
    """Rewrite a saved folder's card from its own files (settings, genes, provenance), adding ``metrics``."""
    folder = Path(folder)
    settings = json.loads((folder / "rarerank_policy.json").read_text(encoding="utf-8")).get("policy", {})
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    n_terms = sum(1 for token in vocab if token.startswith("HP:"))
    with open(folder / "genes.tsv", encoding="utf-8", newline="") as handle:
        n_genes = sum(1 for _ in csv.DictReader(handle, delimiter="\t"))
    record = folder / "provenance.json"
    fields = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    return write_model_card(folder, settings, n_genes, n_terms, fields, metrics)
