"""Exports for other tools: PhEval per-case gene results and OpenAI-RFT-style JSONL.

Layer ``evaluate``: imports cases, the ontology (term labels), the grader settings and the predictions
contract; nothing imports it but the CLI.

PhEval (monarch-initiative/pheval). A PhEval runner's post-processing turns a tool's raw output for
each phenopacket into a table with ``gene_symbol, gene_identifier, score`` and hands it to
``pheval.post_processing.post_processing.generate_gene_result``, which ranks by score (ties share
the worse rank, as here) and matches genes against the phenopacket by symbol or identifier. We
write exactly that table, one TSV per phenopacket file stem (``<stem>.tsv``), so a runner is a
three-line loop. Scores are the method's own when they order the genes like its ranks do;
otherwise ``1 / rank`` is written so PhEval recovers the same ranks.

OpenAI reinforcement fine-tuning. One JSON object per line with ``messages`` (a single user
message: the phenotype in words with HPO ids, and the answer format) plus the reference fields a
grader reads as ``item.*``: ``reference_answer`` (the causal gene symbol), ``gene_id``,
``case_id``. ``grader.json`` is a Python grader that runs our own grader code with the configured shape,
the gene universe (only known gene symbols take a rank, so prose words are not genes) and, unless the
grader config sets its own ``k``, a cut-off at the 10 genes the prompt asks for (nothing past rank 10).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from rarerank.core.fileio import atomic_write, honour_umask, path_inside
from rarerank.core.grader import DEFAULT_GRADER, GraderConfig
from rarerank.core.rankings import RankedGene
from rarerank.data.cases import Case, iter_source
from rarerank.data.ontology import Ontology

log = logging.getLogger(__name__)

PHEVAL_COLUMNS = ("gene_symbol", "gene_identifier", "score")
ANSWER_LENGTH = 10  # genes the hosted model is asked to list


def phenopacket_stem(case: Case) -> str:
    """The phenopacket file name without ``.json`` (PhEval pairs results and phenopackets by it)."""
    return Path(case.source).stem if case.source else case.case_id


def _written(score: float) -> float:
    return float(f"{score:.6g}")


def _consistent(ranked: Sequence[RankedGene]) -> bool:
    """True when sorting the written scores in descending order gives the same ranks, ties included."""
    for a, b in zip(ranked, ranked[1:]):
        sa, sb = _written(a.score), _written(b.score)
        if (a.rank == b.rank) != (sa == sb) or (a.rank < b.rank and sa < sb):
            return False
    return True


def export_pheval(cases: Sequence[Case], predictions: Mapping[str, Sequence[RankedGene]], outdir: str | os.PathLike) -> int:
    """Write ``outdir/<phenopacket stem>.tsv`` for every case with predictions; returns files written.

    The folder is filled beside its final place and moved there at the end, so a failed run leaves
    nothing; ``outdir`` must not exist or be empty.
    """
    stems: dict[str, str] = {}
    written, rescored = 0, 0
    with staged_folder(outdir, "PhEval export") as tmp:
        for case in cases:
            ranked = sorted(predictions.get(case.case_id, ()), key=lambda g: (g.rank, g.gene_symbol))
            if not ranked:
                continue  # PhEval itself records a case without results as not found
            stem = phenopacket_stem(case)
            target = path_inside(tmp, stem, ".tsv")  # a case id such as ../../X or /abs/X stays inside
            if target.name != f"{stem}.tsv":
                log.warning("case %s: file name %r is not a plain file name; written as %s", case.case_id, stem, target.name)
            if target.name in stems:
                raise ValueError(f"cases {stems[target.name]} and {case.case_id} share the result file name {target.name!r}")
            stems[target.name] = case.case_id
            use_rank = not _consistent(ranked)
            rescored += use_rank
            with atomic_write(target) as handle:
                handle.write("\t".join(PHEVAL_COLUMNS) + "\n")
                for gene in ranked:
                    score = 1.0 / gene.rank if use_rank else gene.score
                    handle.write(f"{gene.gene_symbol}\t{gene.gene_identifier}\t{score:.6g}\n")
            written += 1
    if rescored:
        log.warning("%d case(s) had scores that do not order genes like their ranks; wrote 1/rank as score", rescored)
    return written


@contextlib.contextmanager
def staged_folder(outdir: str | os.PathLike, what: str) -> Iterator[Path]:
    """A temporary folder beside ``outdir`` that replaces it when the block succeeds (a failure
    leaves nothing; the folder gets the umask's mode, not mkdtemp's 0700); ``outdir`` must not exist
    or be empty."""
    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        raise ValueError(f"{outdir}: {what} folder is not empty; remove it or choose another")
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=outdir.parent, prefix=f".{outdir.name}."))
    try:
        yield tmp
        if outdir.exists():
            outdir.rmdir()  # empty (checked above)
        honour_umask(tmp)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_phenopackets(cases: Sequence[Case], source: str | os.PathLike, outdir: str | os.PathLike) -> tuple[int, list[str]]:
    """Copy the phenopacket file of every case from ``source`` (release zip or folder) into one flat
    folder, ``outdir/<phenopacket stem>.json`` (PhEval's ``testdata/phenopackets``). Returns the files
    written and the ids of cases whose file is not in ``source`` (e.g. cases of a TSV cohort)."""
    wanted: dict[str, Case] = {case.source: case for case in cases if case.source}
    stems: dict[str, str] = {}
    found: set[str] = set()
    with staged_folder(outdir, "phenopacket export") as tmp:
        for entry in iter_source(source):
            case = wanted.get(entry.name)
            if case is None or entry.data is None:
                continue
            stem = phenopacket_stem(case)
            if stems.setdefault(stem, case.case_id) != case.case_id:
                raise ValueError(f"cases {stems[stem]} and {case.case_id} share the phenopacket file stem {stem!r}")
            with atomic_write(tmp / f"{stem}.json", "wb") as handle:
                handle.write(entry.data)
            found.add(entry.name)
    missing = [case.case_id for case in cases if case.source not in found]
    return len(found), missing


# ---------------------------------------------------------------------------------------------
# OpenAI-RFT-style JSONL.


def _term_lines(terms: Sequence[str], ontology: Ontology | None) -> list[str]:
    lines = []
    for term in terms:
        label = ontology.label(term) if ontology is not None else term
        lines.append(f"- {label} ({term})" if label != term else f"- {term}")
    return lines


JSON_INSTRUCTION = (
    "Which gene is most likely to carry the causal variant? Answer with a JSON array of {n} "
    "HGNC gene symbols, most likely first, and nothing else."
)


def phenotype_lines(case: Case, ontology: Ontology | None = None) -> list[str]:
    """The facts every prompt states: the observed phenotypic features, then the excluded ones,
    each by HPO label and id."""
    parts = [
        "A patient is suspected to have a rare Mendelian disease. Their phenotypic features, "
        "coded with the Human Phenotype Ontology (HPO), are:",
        *_term_lines(case.present, ontology),
    ]
    if case.absent:
        parts += ["", "These features were looked for and are explicitly absent:", *_term_lines(case.absent, ontology)]
    return parts


def rft_prompt(
    case: Case, ontology: Ontology | None = None, answer_length: int = ANSWER_LENGTH, instruction: str = JSON_INSTRUCTION
) -> str:
    """A natural-language prompt: the phenotype (:func:`phenotype_lines`), then ``instruction`` with
    ``{n}`` replaced by the number of genes asked for."""
    return "\n".join([*phenotype_lines(case, ontology), "", instruction.format(n=answer_length)])


def rft_record(case: Case, ontology: Ontology | None = None) -> dict:
    return {
        "messages": [{"role": "user", "content": rft_prompt(case, ontology)}],
        "reference_answer": case.gene,
        "gene_id": case.gene_id,
        "case_id": case.case_id,
    }


def export_rft_jsonl(cases: Sequence[Case], path: str | os.PathLike, ontology: Ontology | None = None) -> int:
    """Write one JSON line per case (cases without a gene are skipped: they cannot be graded)."""
    written = 0
    with atomic_write(path) as handle:
        for case in cases:
            if not case.gene:
                continue
            handle.write(json.dumps(rft_record(case, ontology), ensure_ascii=False, sort_keys=True) + "\n")
            written += 1
    return written


_GRADER_WRAPPER = """

# --- hosted-grader entry point (appended by rarerank.evaluate.interop) ---
_rarerank_grade = grade
_CONFIG = GraderConfig(shape={shape!r}, k={k!r}, half_life={half_life!r})
_UNIVERSE = frozenset(json.loads({universe!r})) or None  # known gene symbols (None: any symbol)


def grade(sample, item):
    return _rarerank_grade(sample.get("output_text") or "", str(item["reference_answer"]), _CONFIG, _UNIVERSE)
"""


def hosted_config(config: GraderConfig = DEFAULT_GRADER, answer_length: int = ANSWER_LENGTH) -> GraderConfig:
    """The hosted grader's settings: ours, with the cut-off at the answer length the prompt asks for
    when ours has none (a configured k is kept, so hosted and local scores stay the same)."""
    return config if config.k is not None else dataclasses.replace(config, k=answer_length)


def python_grader(config: GraderConfig = DEFAULT_GRADER, universe: Iterable[str] | None = None) -> dict:
    """A hosted-RFT Python grader: the sources of :mod:`rarerank.core.settings` and
    :mod:`rarerank.core.grader` (standard library only) as one module, plus a ``grade(sample, item)``
    entry point with our configured shape, cut off at the answer length (:func:`hosted_config`), and
    counting only the gene symbols of ``universe`` when given."""
    from rarerank.core import grader, settings

    config = hosted_config(config)
    known = json.dumps(sorted({grader.normalise_symbol(s) for s in universe} if universe is not None else ()))
    source = "from __future__ import annotations\n" + _standalone(settings) + _standalone(grader)
    source += _GRADER_WRAPPER.format(shape=config.shape, k=config.k, half_life=config.half_life, universe=known)
    return {"type": "python", "name": f"rarerank_{config.shape}_rank", "source": source}


def _standalone(module) -> str:
    """A module's source without its ``from __future__`` and rarerank imports (for bundling)."""
    import inspect

    lines = inspect.getsource(module).splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(("from __future__ import", "from rarerank.")))


def write_python_grader(path: str | os.PathLike, config: GraderConfig = DEFAULT_GRADER, universe: Iterable[str] | None = None) -> None:
    with atomic_write(path) as handle:
        json.dump(python_grader(config, universe), handle, indent=2, sort_keys=True)
        handle.write("\n")


# ---------------------------------------------------------------------------------------------
# A hosted model's answers to the exported prompts.

_CASE_ID_PATHS = (("case_id",), ("custom_id",), ("item", "case_id"), ("datasource_item", "case_id"), ("metadata", "case_id"))


def _at(record, path: Sequence[str]):
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _message_text(output) -> str | None:
    """Text of the last assistant message of a list of output items (Responses API or Evals samples)."""
    texts = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict) or item.get("type") == "reasoning" or item.get("role") not in (None, "assistant"):
            continue
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
            texts.append("".join(parts)) if parts else None
    return texts[-1] if texts else None


def _answer_text(record: dict) -> str | None:
    for path in (("output_text",), ("sample", "output_text"), ("completion",), ("answer",)):
        if isinstance(value := _at(record, path), str):
            return value
    for body in (record, _at(record, ("response", "body"))):
        choices = _at(body, ("choices",))
        if isinstance(choices, list) and choices and isinstance(_at(choices[0], ("message", "content")), str):
            return choices[0]["message"]["content"]
        if (text := _message_text(_at(body, ("output",)))) is not None:
            return text
    return _message_text(_at(record, ("sample", "output")))


def _answer_error(record: dict) -> str | None:
    for path in (("error",), ("sample", "error"), ("response", "body", "error")):
        if (value := _at(record, path)) not in (None, "", {}):
            return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    status = _at(record, ("response", "status_code"))
    return f"HTTP status {status}" if status not in (None, 200) else None


def read_hosted_answers(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """The answers a hosted model returned for prompts from :func:`export_rft_jsonl`, matched by case id.

    One JSON object per line: ``{"case_id", "output_text"}``, a Batch API result (``custom_id`` = the
    case id; a chat completion or a Responses API body), or an Evals output item (``datasource_item``
    = the exported record, ``sample.output``). Returns (case_id -> answer text, case_id -> error of
    lines that returned an error instead of an answer). A line that is not JSON, names no case, holds
    no answer or repeats a case raises ValueError with the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"hosted answers file not found: {path}")
    answers: dict[str, str] = {}
    errors: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_no}: not a JSON object ({error})") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {line_no}: expected a JSON object, got {type(record).__name__}")
            case_id = next((str(v) for p in _CASE_ID_PATHS if (v := _at(record, p)) not in (None, "")), None)
            if case_id is None:
                raise ValueError(f"{path}, line {line_no}: no case id (case_id, custom_id, item.case_id or datasource_item.case_id)")
            if case_id in answers or case_id in errors:
                raise ValueError(f"{path}, line {line_no}: case {case_id} answered twice")
            error = _answer_error(record)
            text = _answer_text(record)
            if error is not None and text is None:
                errors[case_id] = error
            elif text is None:
                raise ValueError(f"{path}, line {line_no}: no answer text for case {case_id} (output_text, choices or output)")
            else:
                answers[case_id] = text
    return answers, errors
