"""A natural-language LLM through TRL: settings, prompts, one parser for rewards and metrics, hosted
answers, dynamic sampling, and (slow) the stand-in checkpoint, a toy GRPO run and the commands."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from rarerank.cli import main
from rarerank.core.grader import GraderConfig
from rarerank.data.cases import Case, write_cases
from rarerank.evaluate.interop import read_hosted_answers, rft_record
from rarerank.evaluate.metrics import EvalConfig, case_results, per_case_values, read_prediction_table
from rarerank.model.llm import LLMConfig, case_messages
from rarerank.rank.llm import completions_path, write_answers
from rarerank.train.llm_rft import chosen_groups, informative_groups, join_batches, reward_functions, take_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GENES = ["FBN1", "TGFBR1", "TGFBR2", "SMAD3", "PAH", "NF1"]
UNIVERSE = {g: f"NCBIGene:{i}" for i, g in enumerate(GENES, start=1)}
TERMS = ("HP:0001166", "HP:0001083", "HP:0002616", "HP:0000098")


def case(case_id: str, gene: str, present=TERMS[:3], absent=()) -> Case:
    return Case(case_id, "toy", "", gene, "", "", tuple(present), tuple(absent))


# ---------------------------------------------------------------------------------------------
# Settings and prompts.


def test_settings_default_off_and_checked():
    assert not LLMConfig().enabled and LLMConfig(model="Qwen/Qwen2.5-1.5B-Instruct").enabled
    with pytest.raises(ValueError, match="unknown llm setting"):
        LLMConfig.from_dict({"modle": "x"})
    with pytest.raises(ValueError) as error:
        LLMConfig(num_generations=3, per_device_train_batch_size=8, gradient_accumulation_steps=1, loss_type="ppo", rewards={"rank": 0})
    message = str(error.value)
    assert "must be a multiple of num_generations" in message and "llm.loss_type must be one of" in message
    assert "at least one reward a non-zero weight" in message
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        LLMConfig(num_generations=1)
    with pytest.raises(ValueError, match="unknown reward"):
        LLMConfig(rewards={"rank": 1.0, "length": 1.0})


def test_prompt_states_the_hosted_facts(ontology):
    patient = case("c1", "FBN1", present=("HP:0001166",), absent=("HP:0001083",))
    numbered = case_messages(patient, ontology, LLMConfig(system_prompt="You are a clinical geneticist."))
    assert numbered[0] == {"role": "system", "content": "You are a clinical geneticist."}
    text = numbered[1]["content"]
    assert "- Arachnodactyly (HP:0001166)" in text and "explicitly absent:\n- Ectopia lentis (HP:0001083)" in text
    assert "numbered list of 10 HGNC gene symbols" in text
    # answer_format json is the hosted export's prompt word for word
    hosted = rft_record(patient, ontology)["messages"]
    assert case_messages(patient, ontology, LLMConfig(answer_format="json")) == hosted


# ---------------------------------------------------------------------------------------------
# One parser: a TRL completion's reward equals the grader score `rarerank evaluate` gives the
# predictions written from the same answer.

ODD_ANSWERS = {
    "plain": "1. FBN1\n2. TGFBR1\n3. PAH",
    "reasoning": "PAH deficiency is unlikely given the skeletal features; TGFBR2 fits the aorta.\n\n1. TGFBR2\n2. FBN1",
    "numbered reasoning": "Steps:\n1. Tall stature: FBN1? or PAH\n2. Aorta\nAnswer:\n1. SMAD3\n2. PAH\n3. FBN1",
    "think": "<think>maybe FBN1</think>\n1. NF1\n2. FBN1",
    "duplicates": "1. fbn1\n2. FBN1\n3. **FBN1**\n4. TGFBR1",
    "unknown symbols": "1. FOO1\n2. XYZ9\n3. FBN1",
    "json": '["TGFBR1", "TGFBR2", "FBN1"]',
    "json after reasoning": 'I thought of ["PAH"] but settle on ["SMAD3", "FBN1"]',
    "json objects": '[{"gene": "PAH", "why": "..."}, {"symbol": "fbn1"}]',
    "nothing known": "Probably a connective-tissue disorder.",
    "empty": "",
}


@pytest.mark.parametrize("grader", [GraderConfig(), GraderConfig("linear", k=3), GraderConfig("exponential", half_life=2.0)])
def test_trl_rewards_equal_evaluate_scores(tmp_path, grader):
    cases = [case(f"c{i}", "FBN1") for i in range(len(ODD_ANSWERS))]
    answers = {c.case_id: text for c, text in zip(cases, ODD_ANSWERS.values())}
    # TRL hands reward functions conversational completions and the dataset's columns
    completions = [[{"role": "assistant", "content": text}] for text in ODD_ANSWERS.values()]
    (rank_reward,), weights = reward_functions(LLMConfig(), grader, GENES)
    rewards = rank_reward(prompts=[[]] * len(cases), completions=completions, gene=[c.gene for c in cases], case_id=list(answers))
    predictions = tmp_path / "predictions.tsv"
    write_answers(cases, answers, UNIVERSE, predictions)
    scores = per_case_values(case_results(cases, read_prediction_table(predictions)), EvalConfig(grader=grader))["grader"]
    assert weights == [1.0]
    assert rewards == scores.tolist()
    # the answers cover every kind of outcome: first, later, missing
    assert {r for r in rewards} >= {1.0, 0.0} and any(0 < r < 1 for r in rewards)


def test_predictions_and_completions_of_answers(tmp_path):
    cases = [case("a", "FBN1"), case("b", "PAH"), case("c", "NF1")]
    counts = write_answers(cases, {"a": "1. TGFBR1\n2. FBN1", "b": "no idea"}, UNIVERSE, tmp_path / "p.tsv")
    assert counts == {"cases": 3, "answered": 2, "named_a_gene": 1, "found": 1}
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows == ["case_id\trank\tgene_symbol\tgene_identifier\tscore", "a\t1\tTGFBR1\tNCBIGene:2\t1", "a\t2\tFBN1\tNCBIGene:1\t0.5"]
    records = [json.loads(line) for line in completions_path(tmp_path / "p.tsv").read_text().splitlines()]
    assert [r["case_id"] for r in records] == ["a", "b", "c"]
    assert records[0]["parsed"] == ["TGFBR1", "FBN1"] and records[0]["rank"] == 2
    assert records[2]["completion"] is None and records[2]["rank"] is None


def test_format_reward_counts_named_genes():
    funcs, weights = reward_functions(LLMConfig(rewards={"rank": 1.0, "format": 0.5}, answer_length=4), GraderConfig(), GENES)
    format_reward = funcs[1]
    assert weights == [1.0, 0.5]
    assert format_reward(completions=["1. FBN1\n2. PAH\n3. FOO", "nothing", "FBN1 PAH NF1 SMAD3 TGFBR1"]) == [0.5, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------
# Hosted answers.


def test_hosted_answers_in_every_returned_shape(tmp_path):
    lines = [
        {"case_id": "a", "output_text": "1. FBN1"},
        {"custom_id": "b", "response": {"status_code": 200, "body": {"choices": [{"message": {"role": "assistant", "content": "PAH"}}]}}},
        {
            "custom_id": "c",
            "response": {
                "status_code": 200,
                "body": {
                    "output": [
                        {"type": "reasoning", "summary": []},
                        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": '["NF1"]'}]},
                    ]
                },
            },
        },
        {
            "datasource_item": {"case_id": "d", "reference_answer": "FBN1"},
            "sample": {"output": [{"role": "assistant", "content": "SMAD3"}]},
        },
        {"custom_id": "e", "response": {"status_code": 429, "body": {"error": {"message": "rate limited"}}}, "error": None},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    answers, errors = read_hosted_answers(path)
    assert answers == {"a": "1. FBN1", "b": "PAH", "c": '["NF1"]', "d": "SMAD3"}
    assert list(errors) == ["e"] and "rate limited" in errors["e"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json\n", "line 1: not a JSON object"),
        ('{"output_text": "FBN1"}\n', "line 1: no case id"),
        ('{"case_id": "a", "output_text": "FBN1"}\n{"case_id": "a", "output_text": "PAH"}\n', "line 2: case a answered twice"),
        ('{"case_id": "a"}\n', "line 1: no answer text for case a"),
    ],
)
def test_bad_hosted_answers_name_the_line(tmp_path, text, message):
    path = tmp_path / "answers.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_hosted_answers(path)


def test_llm_import_command(tmp_path, caplog):
    cases = tmp_path / "cases.tsv"
    write_cases(cases, [case("a", "FBN1"), case("b", "PAH"), case("c", "NF1")])
    universe = tmp_path / "universe.tsv"
    universe.write_text("gene_symbol\tgene_identifier\n" + "".join(f"{g}\t{i}\n" for g, i in UNIVERSE.items()))
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"case_id": "a", "output_text": "1. PAH\n2. FBN1"}) + "\n" + json.dumps({"custom_id": "b", "error": "timeout"}) + "\n"
    )
    out = tmp_path / "pred.tsv"
    assert main(["llm-import", "--answers", str(answers), "--cases", str(cases), "--universe", str(universe), "-o", str(out)]) == 0
    assert out.read_text().splitlines()[1:] == ["a\t1\tPAH\tNCBIGene:5\t1", "a\t2\tFBN1\tNCBIGene:1\t0.5"]
    assert json.loads(completions_path(out).read_text().splitlines()[1])["error"] == "timeout"
    assert "1 case(s) returned an error" in caplog.text and "1 of 3 case(s) have no line" in caplog.text
    # answers for cases that are not in the cases file: refused, nothing written
    answers.write_text(json.dumps({"case_id": "zz", "output_text": "FBN1"}) + "\n")
    out.unlink()
    assert main(["llm-import", "--answers", str(answers), "--cases", str(cases), "--universe", str(universe), "-o", str(out)]) == 1
    assert "case ids not in the cases file, e.g. zz" in caplog.text and not out.exists()


# ---------------------------------------------------------------------------------------------
# Dynamic sampling on hand-made scored batches (G = 2).


def scored_batch(advantages, prompt_width, completion_width, offset=0):
    rows = len(advantages)
    return {
        "prompt_ids": torch.arange(rows * prompt_width).view(rows, prompt_width) + offset,
        "prompt_mask": torch.ones(rows, prompt_width, dtype=torch.long),
        "completion_ids": torch.arange(rows * completion_width).view(rows, completion_width) + offset,
        "completion_mask": torch.ones(rows, completion_width, dtype=torch.long),
        "advantages": torch.tensor(advantages, dtype=torch.float),
        "num_items_in_batch": torch.tensor(rows * completion_width),
    }


def test_groups_with_signal_are_kept_first():
    advantages = torch.tensor([0.0, 0.0, 0.7, -0.7, 0.0, 0.0, 1.0, -1.0])
    assert informative_groups(advantages, 2).tolist() == [False, True, False, True]
    assert chosen_groups(informative_groups(advantages, 2), 2) == [1, 3]
    assert chosen_groups(informative_groups(advantages, 2), 3) == [0, 1, 3]  # topped up in drawing order


def test_join_pads_prompts_left_and_completions_right_then_takes_groups():
    first, second = scored_batch([0.0, 0.0, 1.0, -1.0], 2, 3), scored_batch([0.5, -0.5, 0.0, 0.0], 3, 2, offset=100)
    joined = join_batches(first, second, pad_id=-1)
    assert joined["prompt_ids"].shape == (8, 3) and joined["completion_ids"].shape == (8, 3)
    assert joined["prompt_ids"][0].tolist() == [-1, 0, 1] and joined["prompt_mask"][0].tolist() == [0, 1, 1]
    assert joined["completion_ids"][4].tolist() == [100, 101, -1] and joined["completion_mask"][4].tolist() == [1, 1, 0]
    kept = take_groups(joined, chosen_groups(informative_groups(joined["advantages"], 2), 2), 2)
    assert kept["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    assert kept["completion_ids"][2].tolist() == [100, 101, -1]
    assert kept["num_items_in_batch"] is first["num_items_in_batch"]  # batch-wide values are the caller's to recompute


# ---------------------------------------------------------------------------------------------
# Slow: the stand-in checkpoint, a toy GRPO run, the commands end to end.


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    """A stand-in that answers in the numbered format with the six toy genes in random order."""
    from rarerank.train.llm_stand_in import StandInConfig, build_stand_in

    folder = tmp_path_factory.mktemp("llm") / "stand_in"
    config = StandInConfig(vocab_size=300, hidden_size=32, intermediate_size=64, warmup_steps=150, answer_length=3)
    build_stand_in(folder, GENES, None, terms=TERMS, config=config, full_alphabet=False)
    return folder


def toy_settings(model, **overrides) -> LLMConfig:
    values = dict(model=str(model), answer_length=3, max_completion_length=12, num_generations=8, per_device_train_batch_size=16,
                  gradient_accumulation_steps=1, learning_rate=5e-3, max_steps=30, lora_rank=8, lora_alpha=16, seed=0)  # fmt: skip
    values.update(overrides)
    return LLMConfig(**values)


def training_log(path) -> dict[str, list[float]]:
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {column: [float(r[column]) if r[column] else math.nan for r in rows] for column in rows[0]}


@pytest.mark.slow
@pytest.mark.model
def test_stand_in_is_a_loadable_chat_checkpoint(toy_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(toy_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(toy_checkpoint)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Which gene?"}], add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nWhich gene?<|im_end|>\n<|im_start|>assistant\n"
    assert all(len(tokenizer(" " + g, add_special_tokens=False)["input_ids"]) == 1 for g in GENES)  # whole symbols are tokens
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer)


@pytest.mark.slow
@pytest.mark.model
def test_toy_grpo_raises_the_reward_and_changes_only_the_adapter(toy_checkpoint, tmp_path):
    """One fixed prompt whose answer is FBN1; the warmed-up stand-in lists the six genes in random
    order (mean reciprocal rank ~0.4 over three listed genes). GRPO with LoRA moves FBN1 to the top."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rarerank.train.llm_rft import train_llm

    summary = train_llm(
        toy_settings(toy_checkpoint), [case("c1", "FBN1")] * 8, None, GENES, tmp_path / "rft", tmp_path / "log.tsv", device="cpu"
    )
    log = training_log(tmp_path / "log.tsv")
    first, last = sum(log["reward_mean"][:5]) / 5, sum(log["reward_mean"][-5:]) / 5
    assert summary["steps"] == 30 and len(log["reward_mean"]) == 30
    assert first < 0.6 and last > first + 0.3, (first, last)
    # the adapter moved (peft starts lora_B at zero); the base weights under it did not
    base = AutoModelForCausalLM.from_pretrained(toy_checkpoint)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(toy_checkpoint), tmp_path / "rft")
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and all(float(p.abs().max()) > 0 for p in lora_b)
    base_state = dict(base.named_parameters())  # the output layer is tied to the embeddings
    under = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in tuned.named_parameters() if "lora_" not in n}
    assert under.keys() == base_state.keys()
    assert all(torch.equal(p, base_state[n]) for n, p in under.items())
    prompt = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad(), tuned.disable_adapter():
        assert torch.equal(tuned(prompt).logits, base(prompt).logits)
    with torch.no_grad():
        assert not torch.allclose(tuned(prompt).logits, base(prompt).logits)


@pytest.mark.slow
@pytest.mark.model
def test_dynamic_sampling_draws_groups_with_signal(toy_checkpoint, tmp_path):
    """Once most groups of the fixed prompt score alike, further rounds are drawn for the others."""
    from rarerank.train.llm_rft import train_llm

    cases = [case("c1", "FBN1"), case("c2", "PAH", present=TERMS[1:])]
    config = toy_settings(toy_checkpoint, max_steps=12, filter_groups=True, max_sample_rounds=3)
    train_llm(config, cases * 4, None, GENES, tmp_path / "rft", tmp_path / "log.tsv", device="cpu")
    rounds = training_log(tmp_path / "log.tsv")["sample_rounds"]
    assert len(rounds) == 12 and all(1 <= r <= 3 for r in rounds) and max(rounds) > 1


@pytest.mark.slow
@pytest.mark.model
def test_llm_commands_end_to_end(toy_checkpoint, tmp_path):
    """llm-rft then llm-predict (base and trained, two case sets in one call), scored by evaluate's metrics."""
    cases = tmp_path / "cases.tsv"
    other = tmp_path / "other.tsv"
    write_cases(cases, [case("a", "FBN1"), case("b", "FBN1", present=TERMS[1:])])
    write_cases(other, [case("c", "PAH")])
    universe = tmp_path / "universe.tsv"
    universe.write_text("gene_symbol\tgene_identifier\n" + "".join(f"{g}\t{i}\n" for g, i in UNIVERSE.items()))
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(toy_settings(toy_checkpoint, max_steps=3).to_dict()))
    common = ["--settings", str(settings), "--universe", str(universe), "--device", "cpu", "--no-progress"]
    trained = tmp_path / "rft"
    assert main(["llm-rft", *common, "--train", str(cases), "-o", str(trained), "--log", str(tmp_path / "log.tsv"),
                 "--summary", str(tmp_path / "summary.json")]) == 0  # fmt: skip
    saved = json.loads((trained / "rarerank_llm.json").read_text())
    assert saved["base_model"] == str(toy_checkpoint) and saved["steps"] == 3 and (trained / "adapter_config.json").exists()
    for model in (str(toy_checkpoint), str(trained)):
        outputs = [tmp_path / "p_cases.tsv", tmp_path / "p_other.tsv"]
        assert main(["llm-predict", *common, "--model", model, "--cases", str(cases), str(other), "-o", *map(str, outputs)]) == 0
        records = [json.loads(line) for line in completions_path(outputs[0]).read_text().splitlines()]
        assert [r["case_id"] for r in records] == ["a", "b"] and all(r["completion"] for r in records)
        provenance = json.loads(outputs[1].with_name("p_other.provenance.json").read_text())
        assert provenance["model"] == model and provenance["counts"]["cases"] == 1
        ranks = case_results([case("a", "FBN1"), case("b", "FBN1")], read_prediction_table(outputs[0]))
        assert all(r.rank >= 1 or math.isinf(r.rank) for r in ranks)
        for path in outputs:
            path.unlink()


def test_before_after_figure_is_reproducible(tmp_path):
    header = "method\tstrategy\tset\tmetric\tvalue\tci_low\tci_high\tn\n"
    rows = [("llm_base", "gene", 0.17, 0.12, 0.22), ("llm_rft", "gene", 0.31, 0.25, 0.37), ("llm_base", "random", 0.2, 0.15, 0.25)]
    summary = tmp_path / "summary.tsv"
    summary.write_text(header + "".join(f"{m}\t{s}\tvalidation\ttop1\t{v}\t{lo}\t{hi}\t100\n" for m, s, v, lo, hi in rows))
    stems = [tmp_path / "a" / "llm_rft_gain", tmp_path / "b" / "llm_rft_gain"]
    for stem in stems:
        assert main(["llm-figure", "--summary", str(summary), "--set", "validation", "-o", str(stem)]) == 0
    for ext in ("png", "pdf"):
        first, second = (stem.with_name(f"llm_rft_gain.{ext}").read_bytes() for stem in stems)
        assert first == second and len(first) > 1000


@pytest.mark.slow
@pytest.mark.model
def test_interrupted_rft_resumes_from_its_checkpoint(toy_checkpoint, tmp_path):
    """A run stopped after step 3 resumes from the step-2 checkpoint; the log covers every step once
    and the checkpoints are removed when the run ends."""
    from transformers import TrainerCallback

    from rarerank.train.llm_rft import train_llm

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    config, cases = toy_settings(toy_checkpoint, max_steps=4), [case("c1", "FBN1")] * 4
    run = dict(
        outdir=tmp_path / "rft", log_path=tmp_path / "log.tsv", device="cpu", checkpoint_dir=tmp_path / "ckpt", checkpoint_interval=2
    )
    with pytest.raises(KeyboardInterrupt):
        train_llm(config, cases, None, GENES, callbacks=[Stop()], **run)
    assert [p.name for p in (tmp_path / "ckpt").glob("checkpoint-*")] == ["checkpoint-2"] and not (tmp_path / "rft").exists()
    summary = train_llm(config, cases, None, GENES, **run)
    assert summary["resumed"] and summary["steps"] == 4
    assert training_log(tmp_path / "log.tsv")["step"] == [1.0, 2.0, 3.0, 4.0]
    assert not (tmp_path / "ckpt").exists() and (tmp_path / "rft" / "adapter_model.safetensors").exists()
