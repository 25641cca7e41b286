"""One ``rarerank predict`` run: screen the patients, rank them, explain and report, write all or nothing.

Layer ``rank``. The parts live beside it by concern: reading patients (:mod:`rarerank.rank.patients`),
loading the model (:mod:`rarerank.rank.loading`), ranking (:mod:`rarerank.rank.ranking`), evidence
(:mod:`rarerank.rank.evidence`), the HTML page (:mod:`rarerank.rank.patient_report`) and the outputs
(:mod:`rarerank.rank.outputs`). Cases are read, ranked and written chunk by chunk, so memory stays flat
with the number of cases.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path

from rarerank.data.cases import Case
from rarerank.model.policy import Policy
from rarerank.rank.outputs import OutputPlan, Outputs, PredictionWriter, write_qc
from rarerank.rank.patients import Screen, describe_terms
from rarerank.rank.ranking import rank_stream

log = logging.getLogger(__name__)

SHOW_TERMS = 5  # patients whose terms are logged with labels (the rest are counted)


def _explain_case(case: Case, ranked, explainer, evidence, html: Path | None, plan: OutputPlan, pages: set[str], facts,
                  present_only: bool, probabilities: bool):  # fmt: skip
    """The evidence of one ranked case: rows for the evidence file and its HTML page."""
    from rarerank.rank.patient_report import REPORT_GENES, render_report, report_file_name

    explained = explainer.explain_case(case, ranked[:REPORT_GENES], present_only)
    if evidence is not None:
        evidence.write(explained)
    if html is not None:
        with plan.open(html / report_file_name(case.case_id, pages)) as handle:
            handle.write(render_report(explained, explainer.label, facts, probabilities))


def _report_not_ranked(screen: Screen, qc: Path | None, plan: OutputPlan, ranked_any: bool) -> None:
    """Write the QC rows (when asked for) and warn about the inputs not ranked.

    When nothing could be ranked the run fails and writes nothing but the QC table, which says why."""
    if qc:
        with plan.open(qc) as handle:
            write_qc(handle, screen.qc)
        if not ranked_any:
            plan.commit(qc)
    if screen.qc:
        reasons = dict(sorted(Counter(r.reason for r in screen.qc).items()))
        where = f"see {qc}" if qc else "write them with --qc FILE"
        log.warning("%d input(s) were not ranked: %s (%s), e.g. %s", len(screen.qc), reasons, where, screen.qc[0].detail)
    screen.warn()


def run_predict(
    policy: Policy,
    cases: Iterable[Case],
    screen: Screen,
    outputs: Outputs,
    plan: OutputPlan,
    *,
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    genes: Sequence[str] | None = None,
    explainer=None,
    facts: dict[str, str] | None = None,
    progress: bool = False,
    provenance_fields: dict | None = None,
    workers: int = 1,
) -> dict:
    """Rank the screened cases and stream every requested output through ``plan``; returns counts.

    Raises ValueError when no case could be ranked (the QC table, when asked for, is written and says
    why for each input).
    """
    from rarerank.rank.evidence import EvidenceWriter

    if (outputs.evidence or outputs.html) and explainer is None:
        raise ValueError("--gene-evidence and --html need the HPO annotations (an explainer)")
    facts = dict(facts or {})
    if explainer is not None:
        facts["HPO version"] = explainer.hpo_version
    if genes:
        facts["candidate genes"] = f"{len(genes)} (ranking restricted to them, probabilities renormalised over them)"
    counts = Counter()
    label = explainer.label if explainer is not None else (screen.ontology.label if screen.ontology else str)
    known = screen.known_terms
    with ExitStack() as stack:
        probabilities = (decode_k or policy.config.decode_k) == 1  # scores are log-probabilities of one softmax
        write = PredictionWriter(outputs.open_predictions(plan, stack), outputs.json, probabilities)
        evidence = None
        if outputs.evidence:
            evidence = EvidenceWriter(stack.enter_context(plan.open(outputs.evidence)), outputs.evidence.suffix.lower() == ".json")
        pages: set[str] = set()
        ranking = rank_stream(policy, screen(cases), top_k, decode_k, batch_size, present_only, genes, progress, workers=workers)
        for case, ranked in ranking:
            if counts["cases"] < SHOW_TERMS:
                log.info("terms read: %s", describe_terms(case, label, known))
            write.write(case, ranked)
            counts["cases"] += 1
            counts["rows"] += len(ranked)
            if explainer is not None:
                _explain_case(case, ranked, explainer, evidence, outputs.html, plan, pages, facts, present_only, probabilities)
        if counts["cases"] > SHOW_TERMS:
            log.info("terms read: ... and %d more patient(s)", counts["cases"] - SHOW_TERMS)
        if evidence is not None:
            evidence.close()
        _report_not_ranked(screen, outputs.qc, plan, counts["cases"] > 0)
        counts["qc"] = len(screen.qc)
        if counts["cases"] == 0:
            where = f" (every input's reason: {outputs.qc})" if outputs.qc else ""
            raise ValueError("no case could be ranked: " + (screen.qc[0].detail if screen.qc else "the input holds no case") + where)
        write.close()
        if outputs.provenance:
            from rarerank.core.provenance import provenance

            with plan.open(outputs.provenance) as handle:
                record = provenance(**(provenance_fields or {}), cases=counts["cases"], not_ranked=counts["qc"],
                                    unresolved_terms=dict(screen.unresolved), candidate_genes=len(genes) if genes else None)  # fmt: skip
                json.dump(record, handle, indent=2, sort_keys=True, default=str)
    return dict(counts)
