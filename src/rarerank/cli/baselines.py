"""Baseline subcommands: the HPO index, the ranking baselines and the absent-term audit."""

from __future__ import annotations

import logging
from pathlib import Path

from rarerank.cli.options import add_settings, read_settings

log = logging.getLogger("rarerank")


# --------------------------------------------------------------------------------------------
# baseline-index: the HPO arrays the baselines read.


def _add_baseline_index(sub):
    p = sub.add_parser("baseline-index", help="precompute the HPO arrays (ancestors, IC, propagated annotations) the baselines use")
    p.add_argument("--ontology", required=True, type=Path, help="hp.obo")
    p.add_argument("--gene-annotations", required=True, type=Path, help="genes_to_phenotype.txt")
    p.add_argument("-o", "--output", required=True, type=Path, help="index file to write (.npz)")
    p.add_argument("--universe", type=Path, help="also write the annotated genes (gene_symbol, gene_identifier) as TSV")
    p.set_defaults(func=_run_baseline_index)


def _run_baseline_index(args):
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.data.ontology import Ontology
    from rarerank.rank.baselines import HpoIndex

    ontology = Ontology.load(args.ontology)
    index = HpoIndex.build(ontology, GeneAnnotations.load(args.gene_annotations, ontology))
    index.save(args.output)
    if args.universe:
        index.write_universe(args.universe)
    log.info(
        "HPO %s: %d terms, %d genes, %d propagated annotations -> %s",
        index.hpo_version,
        len(index.terms),
        index.n_genes,
        len(index.ann_gene),
        args.output,
    )


# --------------------------------------------------------------------------------------------
# baseline: rank genes with a baseline method.


def _add_baseline(sub):
    p = sub.add_parser("baseline", help="rank genes with a baseline (phenomizer_union: the similarity rule to read beside the model)")
    p.add_argument(
        "method",
        help="which baseline: phenomizer (observed terms), phenomizer_union (observed ∪ excluded terms), "
        "phenomizer_absent (excluded terms as a penalty), likelihood_ratio (LIRICAL-style, observed terms), "
        "likelihood_ratio_absent (observed and excluded terms), popularity or random",
    )
    p.add_argument("--index", required=True, type=Path, help="HPO index from `rarerank baseline-index`")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--cases",
        type=Path,
        help="what to rank genes for: a cases TSV (the pipeline's sets), a patients TSV (case_id, present[, absent]; "
        "no gene needed, as for `rarerank predict`) or phenopacket JSON (a file, a folder or a release zip)",
    )
    source.add_argument("--hpo", help="observed HPO ids of one patient, read as `rarerank predict --hpo` reads them")
    p.add_argument("--absent", help="excluded HPO ids of that patient (with --hpo)")
    p.add_argument("--case-id", default="patient", help="case_id of the --hpo patient in the output")
    p.add_argument("--train", type=Path, help="training cases TSV (needed by popularity)")
    p.add_argument("-o", "--output", required=True, type=Path, help="predictions TSV to write")
    add_settings(p, "rarerank.rank.baselines:BaselineConfig", flags=("top_k", "absent_weight", "unknown_frequency", "size_penalty", "seed"))
    p.add_argument("--genes", type=Path, help="candidate genes (one symbol per line or a TSV gene_symbol column): rank only these")
    p.add_argument("--ontology", type=Path, help="hp.obo for reading phenopackets (default: the bundled HPO)")
    p.add_argument("--provenance", type=Path, help="JSON provenance record to write beside the predictions")
    p.set_defaults(func=_run_baseline, outputs=("output", "provenance"), inputs=("cases", "train"))
    p.epilog = ("example: rarerank baseline phenomizer_union --index results/baselines/full/hpo_index.npz "
                "--hpo 'HP:0001250 HP:0001263' --absent HP:0000365 -o union.tsv")  # fmt: skip


def _run_baseline(args):
    from rarerank.core.provenance import write_provenance
    from rarerank.data.cases import read_cases
    from rarerank.rank.baselines import METHODS, BaselineConfig, HpoIndex, rank_by_baseline, run_baseline

    if args.method not in METHODS:
        raise ValueError(f"unknown baseline {args.method!r}; choose one of {', '.join(METHODS)}")
    config = read_settings(args, BaselineConfig)
    if args.method == "popularity" and args.train is None:
        raise ValueError("the popularity baseline needs --train (the training cases whose genes it counts)")
    index = HpoIndex.load(args.index)
    cases = _cases_to_rank(args, index)
    train = read_cases(args.train) if args.train else None
    if args.genes:  # rank every gene, keep the candidates, rank them again among themselves
        from dataclasses import replace

        from rarerank.core.rankings import write_predictions
        from rarerank.rank.panels import CutWatch, match_genes, read_gene_list, restrict_ranking

        genes = set(match_genes(read_gene_list(args.genes), index.genes.tolist(), str(args.genes)))
        watch = CutWatch(config.top_k, len(genes))
        predictions = [
            (c, watch.check(c, restrict_ranking(r, genes, config.top_k), restrict_ranking(r, genes, None)))
            for c, r in rank_by_baseline(args.method, index, cases, replace(config, top_k=index.n_genes), train)
        ]
        write_predictions(args.output, predictions)
        rows = sum(len(r) for _, r in predictions)
    else:
        from rarerank.rank.panels import CutWatch

        watch = CutWatch(config.top_k, index.n_genes)
        rows = run_baseline(args.method, index, cases, args.output, config, train, check=watch.check)
        _reach_of_short(watch, args.method, index, cases, config, train)
    watch.warn(f"{args.method} ranking")
    if args.provenance:
        write_provenance(
            args.provenance,
            stage="baseline",
            method=args.method,
            cases=str(args.cases or "--hpo"),
            train=str(args.train) if args.train else None,
            hpo_version=index.hpo_version,
            config=vars(config),
        )
    log.info("%s: %d case(s), %d rows -> %s", args.method, len(cases), rows, args.output)


def _cases_to_rank(args, index):
    """The patients to rank, read as `rarerank predict` reads them (one reader: strict ids, alt/obsolete ids
    mapped, QC of unusable inputs); a cases table as the pipeline writes it is read as written. The terms
    read are logged with their labels."""
    import functools
    from collections import Counter

    from rarerank.data.cases import read_cases, table_header
    from rarerank.data.reference import load_ontology
    from rarerank.rank.patients import Screen, describe_terms, is_cases_table, read_patients, single_case

    if args.absent and not args.hpo:
        raise ValueError("--absent goes with --hpo (a cases file carries its own absent terms)")
    ontology = functools.lru_cache(maxsize=1)(lambda: load_ontology(str(args.ontology) if args.ontology else "bundled"))
    path = args.cases
    if path is not None and path.is_file() and is_cases_table(path) and "gene" in table_header(path):
        return read_cases(path)
    known = set(index.term_pos)
    if args.hpo is not None:
        screen = Screen(known, ontology())
        cases = [screen.one(single_case(args.hpo, args.absent, args.case_id, ontology()), "--hpo")]
        screen.warn()
    else:
        screen = Screen(known, ontology())
        cases = list(screen(read_patients(path, ontology)))
        if screen.qc:
            reasons = dict(sorted(Counter(r.reason for r in screen.qc).items()))
            log.warning("%d input(s) were not ranked: %s, e.g. %s", len(screen.qc), reasons, screen.qc[0].detail)
        screen.warn()
        if not cases:
            raise ValueError(f"{path}: no usable case" + (f" ({screen.qc[0].detail})" if screen.qc else ""))
    for case in cases[:5]:
        log.info("terms read: %s", describe_terms(case, ontology().label, known))
    if len(cases) > 5:
        log.info("terms read: ... and %d more patient(s)", len(cases) - 5)
    return cases


def _reach_of_short(watch, method, index, cases, config, train) -> None:
    """For the first few cases a tie at the cut-off left short or empty, how far their tie reaches
    (ranked again without a cut-off)."""
    from dataclasses import replace

    from rarerank.rank.baselines import rank_by_baseline

    short = {c for c, _ in watch.short[:5]}
    for case_id, full in rank_by_baseline(
        method, index, [c for c in cases if c.case_id in short], replace(config, top_k=index.n_genes), train
    ):
        watch.reach(case_id, full)


# --------------------------------------------------------------------------------------------
# absent-audit: how often excluded terms are the true gene's features.


def _add_absent_audit(sub):
    p = sub.add_parser("absent-audit", help="how often excluded terms are features of the true gene (curation shortcut)")
    p.add_argument("--index", required=True, type=Path, help="HPO index from `rarerank baseline-index`")
    p.add_argument("--sets-dir", required=True, type=Path, help="folder with {strategy}/{set}.tsv case sets")
    p.add_argument("--strategies", required=True, nargs="+", help="split strategies")
    p.add_argument("--sets", required=True, nargs="+", help="case sets")
    p.add_argument("-o", "--output", required=True, type=Path, help="TSV, one row per strategy and set")
    p.set_defaults(func=_run_absent_audit)


def _run_absent_audit(args):
    from rarerank.data.cases import read_cases
    from rarerank.evaluate.metrics import write_metrics_table
    from rarerank.rank.baselines import AUDIT_COLUMNS, HpoIndex, absent_term_audit

    index = HpoIndex.load(args.index)
    rows = []
    for strategy in args.strategies:
        for set_name in args.sets:
            cases = read_cases(args.sets_dir / strategy / f"{set_name}.tsv")
            rows.append({"strategy": strategy, "set": set_name} | absent_term_audit(index, cases))
    write_metrics_table(args.output, ("strategy", "set") + AUDIT_COLUMNS, rows)
    log.info("absent-term audit of %d sets -> %s", len(rows), args.output)


# The subcommands of this module, in the order `rarerank --help` lists them.
COMMANDS = (_add_baseline_index, _add_baseline, _add_absent_audit)
