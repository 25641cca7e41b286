"""Writing what a ranking run produces, all or none: predictions (TSV or JSON), QC, staged outputs.

Layer ``rank``: imports the predictions contract and the case record. Every output of a run is staged
beside its target and renamed into place only when the whole run succeeded (:class:`OutputPlan`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rarerank.core.fileio import model_folder_of, temp_path
from rarerank.core.rankings import PREDICTION_COLUMNS, RankedGene
from rarerank.data.cases import QC_COLUMNS, Case, QCRow


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

    def commit(self, path: str | os.PathLike | None = None) -> None:
        """Rename the staged files into place (only ``path``'s when given: e.g. the QC of a failed run)."""
        targets = list(self.staged) if path is None else [Path(path).resolve()]
        for target in targets:
            os.replace(self.staged.pop(target), target)

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


@dataclass
class Outputs:
    """Where a predict run writes (None = not wanted; predictions None or '-' = standard output)."""

    predictions: Path | None = None
    qc: Path | None = None
    evidence: Path | None = None  # per-gene evidence, TSV (or JSON when the name ends in .json)
    html: Path | None = None  # folder of one HTML page per patient
    provenance: Path | None = None
    json: bool = False  # predictions as JSON (one record per case) instead of the TSV contract

    def plan(self, inputs: Iterable[str | os.PathLike | None]) -> OutputPlan:
        plan = OutputPlan(inputs)
        for option, path in (("-o", self.predictions), ("--qc", self.qc), ("--gene-evidence", self.evidence),
                             ("--html", self.html), ("--provenance", self.provenance)):  # fmt: skip
            plan.add(path, option)
        if self.html is not None and self.html.exists() and not self.html.is_dir():
            raise ValueError(f"--html {self.html}: exists and is not a folder")
        return plan

    def open_predictions(self, plan: OutputPlan, stack) -> IO[str]:
        if self.predictions is None or str(self.predictions) == "-":
            return sys.stdout
        return stack.enter_context(plan.open(self.predictions))


class PredictionWriter:
    """Streams rankings: the TSV predictions contract (header with the first case, so an early error
    prints nothing), or with ``json_format`` a JSON array of one record per case (terms read, genes with
    rank, identifier, score and, when ``probabilities``, ``probability = exp(score)``)."""

    def __init__(self, handle: IO[str], json_format: bool = False, probabilities: bool = True):
        self.handle, self.json, self.probabilities, self.started = handle, json_format, probabilities, False
        self.writer = None if json_format else csv.writer(handle, delimiter="\t", lineterminator="\n")

    def write(self, case: Case, genes: Sequence[RankedGene]) -> None:
        if self.json:
            self.handle.write(("[\n" if not self.started else ",\n") + json.dumps(self.record(case, genes), sort_keys=True))
        else:
            if not self.started:
                self.writer.writerow(PREDICTION_COLUMNS)
            text = "".join(f"{case.case_id}\t{g.rank}\t{g.gene_symbol}\t{g.gene_identifier}\t{g.score:.6g}\n" for g in genes)
            if text.count("\t") == 4 * len(genes) and text.count("\n") == len(genes) and '"' not in text and "\r" not in text:
                self.handle.write(text)  # nothing csv would quote: the same bytes, one write per case
            else:
                self.writer.writerows([case.case_id, g.rank, g.gene_symbol, g.gene_identifier, f"{g.score:.6g}"] for g in genes)
        self.started = True

    def record(self, case: Case, genes: Sequence[RankedGene]) -> dict:
        rows = []
        for g in genes:
            row = {"rank": g.rank, "gene_symbol": g.gene_symbol, "gene_identifier": g.gene_identifier, "score": round(g.score, 6)}
            if self.probabilities:
                row["probability"] = float(f"{math.exp(g.score):.6g}")
            rows.append(row)
        return {"case_id": case.case_id, "present": list(case.present), "absent": list(case.absent), "genes": rows}

    def close(self) -> None:
        if self.json:
            self.handle.write("\n]\n" if self.started else "[]\n")
        elif not self.started:
            self.writer.writerow(PREDICTION_COLUMNS)


def write_qc(handle: IO[str], rows: Iterable[QCRow]) -> None:
    """The QC table of the inputs that were not ranked (tabs and line breaks in cells become spaces)."""
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(QC_COLUMNS)
    writer.writerows([str(v).replace("\t", " ").replace("\n", " ") for v in (r.source_file, r.case_id, r.reason, r.detail)]
                     for r in rows)  # fmt: skip
