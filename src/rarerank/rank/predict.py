"""Rank candidate genes with a trained policy for any input: cases TSV, phenopackets, or HPO ids.

Layer ``rank``. Patients need no answer: a TSV of ``case_id, present[, absent]`` and an undiagnosed
phenopacket (no interpretation) are ranked like training cases. Terms are read tolerantly (commas,
semicolons or spaces between them, lower-case ``hp:``, ``HP:1250`` zero-padded to ``HP:0001250``)
and mapped to current HPO ids (alt ids, obsolete terms with a replacement) when an ontology is
available. A patient with no term the model knows is never ranked on an empty prompt: it is an error
for one patient and a QC row for a batch; so are duplicate and malformed case ids.

Output is the predictions contract of :mod:`rarerank.core.rankings`, streamed: cases are read, ranked and
written chunk by chunk, so memory stays flat with the number of cases. Every output of a run (the
predictions, QC, evidence, HTML pages, provenance) is staged beside its target and renamed into
place only when the whole run succeeded (:class:`OutputPlan`): all outputs or none.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import re
import sys
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rarerank.core.fileio import MAX_LINE_BYTES, Table, model_folder_of, regular_file, temp_path
from rarerank.core.rankings import PREDICTION_COLUMNS, RankedGene, rank_with_ties
from rarerank.data.cases import PARSE_ERROR, QC_COLUMNS, Case, QCRow, read_phenopackets, warn_contradicted
from rarerank.data.ontology import Ontology
from rarerank.model.policy import GENES_FILE, SETTINGS_FILE, Policy, Prompts, constrained_rank, load_policy
from rarerank.rank.panels import CutWatch

log = logging.getLogger(__name__)

PROGRESS_MIN_CASES = 500  # show a progress bar from this many cases on
CHUNK_CASES = 2048  # cases read, ranked and written at a time (memory is flat in the number of cases)

# QC reasons of patients that are not ranked.
NO_USABLE_TERM = "no_usable_term"
DUPLICATE_ID = "duplicate_id"
INVALID_ID = "invalid_case_id"

_TERM = re.compile(r"^HP[:_]?(\d{1,7})$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,;|]+")


# ---------------------------------------------------------------------------------------------
# Reading patients.


def normalise_term(raw: str) -> str:
    """``hp:1250``, ``HP_0001250``, ``HP:0001250`` -> ``HP:0001250``; anything else is returned as given."""
    text = raw.strip()
    match = _TERM.match(text)
    return f"HP:{int(match.group(1)):07d}" if match else text


def split_terms(text: str | None) -> list[str]:
    """HPO ids separated by commas, semicolons, bars or white space, normalised (see :func:`normalise_term`)."""
    if not text:
        return []
    return [normalise_term(t) for t in _SEPARATORS.split(text) if t.strip()]


def single_case(present: str | None, absent: str | None = None, case_id: str = "patient") -> Case:
    terms = split_terms(present)
    if not terms:
        raise ValueError(f"--hpo {present!r}: no HPO id given (e.g. --hpo 'HP:0001250,HP:0001263')")
    return Case(case_id, "", "", "", "", "", tuple(terms), tuple(split_terms(absent)))


def is_cases_table(path: Path) -> bool:
    """A patients TSV (not a phenopacket file, folder or zip): ``.tsv``/``.txt`` or a tab in the first line."""
    path = regular_file(path, "input", folder=True)  # zipfile reads a device such as /dev/zero without end
    if path.is_dir() or path.suffix.lower() in (".json", ".zip") or zipfile.is_zipfile(path):
        return False
    if path.suffix.lower() in (".tsv", ".txt", ".tab"):
        return True
    with open(path, "rb") as handle:
        return b"\t" in handle.readline(MAX_LINE_BYTES)


def read_patient_table(path: str | os.PathLike) -> Iterator[Case | QCRow]:
    """Stream a TSV of ``case_id, present[, absent]`` (other columns such as ``gene`` are ignored).

    Read strictly (:class:`~rarerank.core.fileio.Table`: tabs separate, quotes are text). Raises
    ValueError naming the file when the header lacks a column; a row that does not parse (too many
    cells, not UTF-8, too long) or has no case id becomes a QC row naming the line.
    """
    with Table(path, "patients table") as table:
        path, header = table.path, table.header
        missing = [c for c in ("case_id", "present") if c not in header]
        if missing:
            raise ValueError(
                f"{path}: not a patients table: missing column(s) {', '.join(missing)} "
                f"(tab-separated header found: {', '.join(header) or 'none'}; needed: case_id, present[, absent])"
            )
        for table_row in table:
            row, line = table_row.cells, table_row.line
            if table_row.problem:
                yield QCRow(f"{path.name}:{line}", "", PARSE_ERROR, f"{path.name}, line {line}: {table_row.problem}")
                continue
            case_id = (row.get("case_id") or "").strip()
            if not case_id:
                yield QCRow(f"{path.name}:{line}", "", INVALID_ID, f"line {line}: empty case_id")
                continue
            yield Case(case_id, row.get("cohort") or "", row.get("pmid") or "", "", "", "",
                       tuple(split_terms(row.get("present"))), tuple(split_terms(row.get("absent"))),
                       row.get("source") or "")  # fmt: skip


def read_patients(source: str | os.PathLike, ontology_loader: Callable[[], Ontology]) -> Iterator[Case | QCRow]:
    """Cases (no gene needed) and QC rows from a patients TSV, or a phenopacket file, folder or zip."""
    path = regular_file(source, "input", folder=True)  # a device or FIFO would be read without end
    if is_cases_table(path):
        yield from read_patient_table(path)
        return
    result = read_phenopackets(path, ontology_loader(), require_gene=False)
    yield from result.qc
    yield from result.cases


def load_cases(source: str | os.PathLike, ontology_loader: Callable[[], Ontology]) -> list[Case]:
    """Every rankable case of an input (QC rows are logged); an input with none is an error."""
    items = list(read_patients(source, ontology_loader))
    qc = [i for i in items if isinstance(i, QCRow)]
    if qc:
        log.warning("%d input(s) did not become a case: %s", len(qc), dict(sorted(Counter(r.reason for r in qc).items())))
    cases = [i for i in items if isinstance(i, Case)]
    if not cases:
        raise ValueError(f"{source}: no usable case (every input failed QC)")
    return cases


def resolve_terms(cases: Sequence[Case], ontology: Ontology | None) -> tuple[list[Case], Counter]:
    """Map alt/obsolete ids to current ids; return the cases and a count of unresolvable ids."""
    unresolved: Counter = Counter()
    return [resolve_case(c, ontology, unresolved) for c in cases], unresolved


def resolve_case(case: Case, ontology: Ontology | None, unresolved: Counter) -> Case:
    if ontology is None:
        return case

    def resolve(terms):
        out = []
        for term in terms:
            current, _ = ontology.resolve(term)
            if current is None:
                unresolved[term] += 1
            else:
                out.append(current)
        return tuple(dict.fromkeys(out))

    return Case(case.case_id, case.cohort, case.pmid, case.gene, case.gene_id, case.disease_id,
                resolve(case.present), resolve(case.absent), case.source)  # fmt: skip


@dataclass
class Screen:
    """Turns inputs into rankable cases: maps terms, checks ids and that a known term is left.

    Every input that is not ranked becomes a QC row (``qc``) with the reason; ``unresolved`` counts
    raw ids the ontology does not know.
    """

    known_terms: set[str]  # the terms the ranker has a token (or annotation) for
    ontology: Ontology | None = None
    qc: list[QCRow] = field(default_factory=list)
    unresolved: Counter = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)

    def __call__(self, items: Iterable[Case | QCRow]) -> Iterator[Case]:
        for item in items:
            if isinstance(item, QCRow):
                self.qc.append(item)
                continue
            problem = self.problem(item)
            if problem:
                self.qc.append(QCRow(item.source, item.case_id, *problem))
                continue
            self.seen.add(item.case_id)
            case = resolve_case(item, self.ontology, self.unresolved)
            warn_contradicted(case)
            yield case

    def problem(self, case: Case) -> tuple[str, str] | None:
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in case.case_id):
            return INVALID_ID, f"case id {case.case_id!r} holds a tab, line break or other control character"
        if case.case_id in self.seen:
            return DUPLICATE_ID, f"{case.case_id}: the case id appears more than once (the first one is ranked)"
        present = resolve_case(case, self.ontology, Counter()).present
        if not any(t in self.known_terms for t in present):
            given = ", ".join(case.present) or "none"
            return NO_USABLE_TERM, (f"{case.case_id}: no observed HPO term the model knows (given: {given}); "
                                    "ids look like HP:0001250, phenotypic-abnormality terms only")  # fmt: skip
        return None

    def one(self, case: Case, what: str) -> Case:
        """The single patient of ``--hpo``/``--text``: a problem is an error, not a QC row."""
        cases = list(self([case]))
        if not cases:
            raise ValueError(f"{what}: {self.qc[-1].detail}")
        return cases[0]


# ---------------------------------------------------------------------------------------------
# The model.


def check_model_dir(path: str | os.PathLike) -> None:
    """A model folder must hold its settings and gene list: without them the ranking silently changes."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    adapter = (path / "adapter_config.json").exists()
    if not adapter and not (path / "config.json").exists():
        raise ValueError(f"{path}: not a model directory (no config.json or adapter_config.json)")
    if adapter:
        return  # an adapter may take both files from its base model, which load_policy checks below
    if not (path / SETTINGS_FILE).exists():
        raise ValueError(f"{path}: {SETTINGS_FILE} is missing (prompt limits, decode_k, output_k): without it the "
                         "ranking would silently use default settings; copy it from the training run")  # fmt: skip
    if not (path / GENES_FILE).exists():
        raise ValueError(f"{path}: {GENES_FILE} is missing (gene symbol -> NCBIGene/HGNC identifier): without it "
                         "every gene_identifier would be blank; copy it from the training run")  # fmt: skip


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """:func:`load_policy` with one-line errors naming the folder (truncated weights, refused pickles)."""
    check_model_dir(path)
    try:
        return load_policy(path, device)
    except Exception as error:  # safetensors, torch and transformers raise their own types, naming no file
        if isinstance(error, (FileNotFoundError, ValueError)) and str(Path(path)) in str(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in first:  # torch refused a pickle that holds more than tensors
            first = "a pickled weights file holds objects other than tensors and was not loaded (it could run code); use safetensors"
        raise ValueError(f"{path}: cannot load the model ({type(error).__name__}: {first})") from error


@dataclass
class PanelPolicy(Policy):
    """A policy whose gene vocabulary is cut to a candidate list: the constrained softmax renormalises
    over those genes only, so scores are log-probabilities within the list."""

    panel: tuple[str, ...] = ()

    @property
    def genes(self) -> list[str]:
        return list(self.panel)

    @property
    def gene_ids(self) -> torch.LongTensor:
        cached = getattr(self, "_panel_ids", None)
        if cached is None:
            cached = self._panel_ids = torch.tensor(self.tokenizer.convert_tokens_to_ids(list(self.panel)), dtype=torch.long)
        return cached


def restrict_policy(policy: Policy, genes: Iterable[str]) -> PanelPolicy:
    vocab = policy.tokenizer.get_vocab()
    panel = tuple(sorted(set(genes), key=vocab.__getitem__))  # token order, so gene indices ascend
    return PanelPolicy(policy.model, policy.tokenizer, policy.config, policy.identifiers, panel)


# ---------------------------------------------------------------------------------------------
# Ranking.


def rank_chunk(
    policy: Policy, cases: Sequence[Case], top_n: int, decode_k: int | None, batch_size: int, present_only: bool, stats: Prompts
) -> list[list[tuple[str, float]]]:
    """The one ranking call: (gene, score) lists, best first, ``top_n`` per case."""
    return constrained_rank(policy, cases, k=decode_k, batch_size=batch_size, top_n=top_n,
                            present_only=present_only, stats=stats)  # fmt: skip


def chunked(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def rank_stream(
    policy: Policy,
    cases: Iterable[Case],
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    genes: Sequence[str] | None = None,
    progress: bool = False,
    chunk_size: int = CHUNK_CASES,
) -> Iterator[tuple[Case, list[RankedGene]]]:
    """(case, ranked genes) per case in input order, ``top_k`` rows each (default: the model's output_k).

    ``genes`` restricts the ranking to a candidate list. A tie across the cut-off drops the tied genes
    whole (the contract's worse-rank rule); such rankings are counted and warned about at the end.
    """
    top_k = policy.config.output_k if top_k is None else top_k
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, not {top_k}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, not {batch_size}")
    ranker = restrict_policy(policy, genes) if genes else policy
    watch = CutWatch(top_k, len(ranker.genes))
    stats = Prompts(torch.empty(0), torch.empty(0))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="case", desc="ranking", delay=1.0)  # silent on short runs
    for chunk in chunked(cases, chunk_size):
        ranked = rank_chunk(ranker, chunk, top_k + 1, decode_k, batch_size, present_only, stats)
        for case, scored in zip(chunk, ranked):
            yield case, list(watch.check(case.case_id, rank_with_ties(dict(scored), policy.identifiers, top_k=top_k)))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if stats.unknown_terms:
        examples = ", ".join(f"{t} ({n})" for t, n in sorted(stats.unknown.items(), key=lambda x: -x[1])[:10])
        log.warning("%d term occurrence(s) unknown to the model were skipped: %s", stats.unknown_terms, examples)
    if stats.truncated_terms:
        log.info("%d term(s) beyond the prompt limits were left out", stats.truncated_terms)
    watch.warn("patient ranking")


def rank_cases(
    policy: Policy,
    cases: Sequence[Case],
    top_k: int | None = None,
    decode_k: int | None = None,
    batch_size: int = 64,
    present_only: bool = False,
    progress: bool | None = None,
    genes: Sequence[str] | None = None,
) -> list[tuple[str, list[RankedGene]]]:
    """(case_id, ranked genes) per case, as a list (see :func:`rank_stream`)."""
    if progress is None:
        progress = len(cases) >= PROGRESS_MIN_CASES
    return [(c.case_id, r) for c, r in rank_stream(policy, cases, top_k, decode_k, batch_size, present_only, genes, progress)]


# ---------------------------------------------------------------------------------------------
# Outputs: all or none.


class OutputPlan:
    """The outputs of one run: checked against the inputs and each other up front, written to temp files
    beside their targets, and renamed into place together by :meth:`commit` (or all removed on error)."""

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = ()):
        self.inputs = {Path(p).resolve(): str(p) for p in inputs if p is not None and str(p) != "-"}
        self.targets: dict[Path, str] = {}
        self.staged: dict[Path, Path] = {}

    def add(self, path: str | os.PathLike | None, option: str) -> Path | None:
        """Register an output; refuse a path that is an input or another output of this run."""
        if path is None or str(path) == "-":
            return None
        target = Path(path).resolve()
        if (model := model_folder_of(target)) is not None:
            raise ValueError(f"{option} {path}: inside the model folder {model}; choose another path")
        for other, name in [*self.inputs.items(), *self.targets.items()]:
            if target == other or other in target.parents or target in other.parents:
                kind = "the input" if other in self.inputs else "the output of " + name
                raise ValueError(f"{option} {path}: the same path as (or nested in) {kind} {other}; choose another path")
        self.targets[target] = option
        return Path(path)

    def stage(self, path: str | os.PathLike) -> Path:
        """The temp file to write for ``path`` (a registered output, or a file inside a registered folder)."""
        target = Path(path).resolve()
        if target not in self.targets and not any(p in self.targets for p in target.parents):
            raise ValueError(f"{path} is not an output of this run")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)  # a killed run's are removed here, next time
        self.staged[target] = tmp
        return tmp

    def open(self, path: str | os.PathLike):
        return open(self.stage(path), "w", encoding="utf-8", newline="")

    def commit(self) -> None:
        for target, tmp in self.staged.items():
            os.replace(tmp, target)
        self.staged.clear()

    def discard(self) -> None:
        for tmp in self.staged.values():
            tmp.unlink(missing_ok=True)
        self.staged.clear()

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(self, kind, error, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def prediction_writer(handle):
    """A function writing one case's rows of the predictions contract to ``handle`` (header first)."""
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    started = []

    def write(case_id: str, genes: Sequence[RankedGene]) -> None:
        if not started:  # the header goes out with the first case, so an early error prints nothing
            writer.writerow(PREDICTION_COLUMNS)
            started.append(True)
        writer.writerows([case_id, g.rank, g.gene_symbol, g.gene_identifier, f"{g.score:.6g}"] for g in genes)

    return write


def qc_writer(handle):
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(QC_COLUMNS)
    return lambda row: writer.writerow([str(v).replace("\t", " ").replace("\n", " ") for v in
                                        (row.source_file, row.case_id, row.reason, row.detail)])  # fmt: skip


def write_table(path: str | os.PathLike | None, predictions) -> None:
    """Write predictions to ``path`` atomically, or to stdout when path is None or '-'."""
    if path is not None and str(path) != "-":
        with OutputPlan() as plan:
            plan.add(path, "-o")
            with plan.open(path) as handle:
                write = prediction_writer(handle)
                for case_id, genes in predictions:
                    write(case_id, genes)
                write("", ())
        return
    write = prediction_writer(sys.stdout)
    for case_id, genes in predictions:
        write(case_id, genes)
    write("", ())


# ---------------------------------------------------------------------------------------------
# One predict run: rank, explain, report, write everything or nothing.


@dataclass
class Outputs:
    """Where a predict run writes (None = not wanted; predictions None or '-' = standard output)."""

    predictions: Path | None = None
    qc: Path | None = None
    evidence: Path | None = None  # per-gene evidence, TSV (or JSON when the name ends in .json)
    html: Path | None = None  # folder of one HTML page per patient
    provenance: Path | None = None

    def plan(self, inputs: Iterable[str | os.PathLike | None]) -> OutputPlan:
        plan = OutputPlan(inputs)
        for option, path in (("-o", self.predictions), ("--qc", self.qc), ("--gene-evidence", self.evidence),
                             ("--html", self.html), ("--provenance", self.provenance)):  # fmt: skip
            plan.add(path, option)
        if self.html is not None and self.html.exists() and not self.html.is_dir():
            raise ValueError(f"--html {self.html}: exists and is not a folder")
        return plan


def model_facts(model_dir: str | os.PathLike, policy: Policy) -> dict[str, str]:
    """What a report shows about the model: folder, stage, training HPO release, code version, settings."""
    import json

    from rarerank import __version__

    facts = {"model": str(model_dir)}
    record = Path(model_dir) / "provenance.json"
    if record.exists():
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        for key, name in (("stage", "model stage"), ("hpo_version", "model HPO version"), ("git_commit", "model code")):
            if data.get(key):
                facts[name] = str(data[key])
    facts["genes in model"] = str(len(policy.genes))
    facts["decode_k"] = str(policy.config.decode_k)
    facts["rarerank"] = __version__
    return facts


def _explain_case(case: Case, ranked, explainer, evidence, html: Path | None, plan: OutputPlan, pages: set[str], facts, present_only: bool):
    """The per-gene evidence of one ranked case: rows for the evidence file and its HTML page."""
    from rarerank.rank.patient_report import REPORT_GENES, render_report, report_file_name

    absent = () if present_only else case.absent
    per_gene = {g.gene_symbol: explainer.explain(case.case_id, case.present, absent, g.rank, g.gene_symbol) for g in ranked[:REPORT_GENES]}
    if evidence is not None:
        evidence.write(case.case_id, [row for rows in per_gene.values() for row in rows])
    if html is not None:
        page = render_report(case.case_id, case.present, absent, ranked, per_gene, explainer.label, facts)
        with plan.open(html / report_file_name(case.case_id, pages)) as handle:
            handle.write(page)


def _report_not_ranked(screen: Screen, qc: Path | None, plan: OutputPlan) -> None:
    """Write the QC rows (when asked for) and warn about inputs not ranked and unknown HPO ids."""
    if qc:
        with plan.open(qc) as handle:
            write_qc_row = qc_writer(handle)
            for row in screen.qc:
                write_qc_row(row)
    if screen.qc:
        reasons = dict(sorted(Counter(r.reason for r in screen.qc).items()))
        where = f"see {qc}" if qc else "write them with --qc FILE"
        log.warning("%d input(s) were not ranked: %s (%s), e.g. %s", len(screen.qc), reasons, where, screen.qc[0].detail)
    if screen.unresolved:
        log.warning("%d HPO id occurrence(s) unknown to the ontology were skipped: %s", sum(screen.unresolved.values()),
                    ", ".join(sorted(screen.unresolved)[:10]))  # fmt: skip


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
) -> dict:
    """Rank the screened cases and stream every requested output through ``plan``; returns counts.

    Raises ValueError when no case could be ranked (the QC table says why for each input).
    """
    from contextlib import ExitStack

    from rarerank.rank.evidence import EvidenceWriter

    if (outputs.evidence or outputs.html) and explainer is None:
        raise ValueError("--gene-evidence and --html need the HPO annotations (an explainer)")
    facts = dict(facts or {})
    if explainer is not None:
        facts["HPO version"] = explainer.hpo_version
    if genes:
        facts["candidate genes"] = f"{len(genes)} (ranking restricted to them)"
    counts = Counter()
    with ExitStack() as stack:
        if outputs.predictions is None or str(outputs.predictions) == "-":
            write = prediction_writer(sys.stdout)
        else:
            write = prediction_writer(stack.enter_context(plan.open(outputs.predictions)))
        evidence = None
        if outputs.evidence:
            evidence = EvidenceWriter(stack.enter_context(plan.open(outputs.evidence)), outputs.evidence.suffix.lower() == ".json")
        pages: set[str] = set()
        for case, ranked in rank_stream(policy, screen(cases), top_k, decode_k, batch_size, present_only, genes, progress):
            write(case.case_id, ranked)
            counts["cases"] += 1
            counts["rows"] += len(ranked)
            if explainer is not None:
                _explain_case(case, ranked, explainer, evidence, outputs.html, plan, pages, facts, present_only)
        if evidence is not None:
            evidence.close()
        _report_not_ranked(screen, outputs.qc, plan)
        counts["qc"] = len(screen.qc)
        if counts["cases"] == 0:
            raise ValueError("no case could be ranked: " + (screen.qc[0].detail if screen.qc else "the input holds no case"))
        if outputs.provenance:
            import json

            from rarerank.core.provenance import provenance

            with plan.open(outputs.provenance) as handle:
                record = provenance(**(provenance_fields or {}), cases=counts["cases"], not_ranked=counts["qc"],
                                    unresolved_terms=dict(screen.unresolved), candidate_genes=len(genes) if genes else None)  # fmt: skip
                json.dump(record, handle, indent=2, sort_keys=True, default=str)
    return dict(counts)
