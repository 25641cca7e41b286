"""A natural-language LLM's answers as predictions: local generation (a checkpoint, or one trained by
``rarerank llm-rft``) or a hosted model's returned answers, parsed by the rank grader's one parser.

Layer ``rank``: imports the LLM (:mod:`rarerank.model.llm`), the grader's parser and the predictions
contract. A case's predictions are the parsed list in its order (rank 1 first, score ``1 / rank``);
genes it did not list are unranked, and an answer that names no known gene writes no rows (the case
counts as not found). Every answer is kept beside the predictions (``<predictions>.completions.jsonl``:
case, true gene, completion, parsed list, the true gene's rank) so any score can be read back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rarerank.core.fileio import atomic_write
from rarerank.core.grader import parse_ranked_list, rank_of
from rarerank.core.rankings import RankedGene, write_predictions
from rarerank.data.cases import Case
from rarerank.data.ontology import Ontology
from rarerank.model.llm import LLMConfig, case_messages, generate_answers, load_model, trained_base, use_vllm

log = logging.getLogger(__name__)


def completions_path(predictions: str | os.PathLike) -> Path:
    """``<set>.completions.jsonl`` beside ``<set>.tsv``."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name.removesuffix(".tsv") + ".completions.jsonl")


def ranked_answer(answer: str, universe: Mapping[str, str]) -> list[RankedGene]:
    """The predictions of one answer: the parsed known genes in order, rank 1..n, score 1 / rank."""
    return [
        RankedGene(rank, symbol, universe.get(symbol, ""), 1.0 / rank)
        for rank, symbol in enumerate(parse_ranked_list(answer, universe), start=1)
    ]


def write_answers(
    cases: Sequence[Case],
    answers: Mapping[str, str],
    universe: Mapping[str, str],
    predictions: str | os.PathLike,
    extra: Mapping[str, Mapping] | None = None,
) -> dict:
    """Write the predictions of ``answers`` (case_id -> text) for ``cases`` (in case order) and the
    completions file beside them. Returns counts: cases, answered, with a known gene, true gene found."""
    ranked = [(case.case_id, ranked_answer(answers.get(case.case_id, ""), universe)) for case in cases]
    counts = {"cases": len(cases), "answered": 0, "named_a_gene": 0, "found": 0}
    with atomic_write(completions_path(predictions)) as handle:
        for case, (_, genes) in zip(cases, ranked):
            answered = case.case_id in answers
            symbols = [g.gene_symbol for g in genes]
            rank = rank_of(case.gene, symbols) if case.gene else None
            counts["answered"] += answered
            counts["named_a_gene"] += bool(genes)
            counts["found"] += rank is not None
            record = {"case_id": case.case_id, "gene": case.gene, "completion": answers.get(case.case_id), "parsed": symbols, "rank": rank}
            record.update((extra or {}).get(case.case_id, {}))
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    write_predictions(predictions, ranked)
    return counts


def generate_for_cases(
    model: str | os.PathLike,
    case_sets: Sequence[Sequence[Case]],
    ontology: Ontology | None,
    config: LLMConfig,
    device,
    progress: bool = False,
) -> list[dict[str, str]]:
    """case_id -> greedy answer, for each set of cases; the model is loaded once (vLLM when
    ``config.generation_backend`` selects it, else transformers' ``generate``)."""
    conversations = [[case_messages(c, ontology, config) for c in cases] for cases in case_sets]
    flat = [conversation for group in conversations for conversation in group]
    if use_vllm(config.generation_backend) and str(device) != "cpu":
        texts = _generate_vllm(model, flat, config)
    else:
        weights, tokenizer = load_model(model, config.dtype, device)
        texts = generate_answers(weights, tokenizer, flat, config.max_completion_length, config.predict_batch_size, progress)
    answers, start = [], 0
    for cases in case_sets:
        answers.append({c.case_id: texts[start + i] for i, c in enumerate(cases)})
        start += len(cases)
    return answers


def _generate_vllm(model: str | os.PathLike, conversations: Sequence[list[dict]], config: LLMConfig) -> list[str]:
    """Greedy answers from vLLM; a LoRA folder from ``rarerank llm-rft`` runs as an adapter on its base."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    base = trained_base(model)
    adapter = base is not None and (Path(model) / "adapter_config.json").is_file()
    rank = json.loads((Path(model) / "adapter_config.json").read_text())["r"] if adapter else None
    engine = LLM(model=base if adapter else str(model), dtype=config.dtype, enable_lora=adapter, max_lora_rank=rank or 16, seed=config.seed)
    params = SamplingParams(temperature=0.0, max_tokens=config.max_completion_length)
    request = LoRARequest("rarerank", 1, str(model)) if adapter else None
    return [output.outputs[0].text for output in engine.chat(list(conversations), params, lora_request=request)]


def unknown_answers(answers: Iterable[str], cases: Sequence[Case], source: str | os.PathLike) -> None:
    """Refuse answers for case ids that are not among the cases (another split's answers?)."""
    known = {c.case_id for c in cases}
    stray = sorted(set(answers) - known)
    if stray:
        raise ValueError(f"{source}: {len(stray)} answer(s) for case ids not in the cases file, e.g. {', '.join(stray[:5])}")
