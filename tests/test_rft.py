"""GRPO core and the RFT loop on tiny models: learning, LoRA, exact resume, rewards, config checks."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rarerank.grader import GraderConfig, grade
from rarerank.grpo import (
    AllowedHead,
    Prompts,
    build_rewards,
    combined_reward,
    group_advantages,
    grpo_loss,
    make_hit_reward,
    make_rank_reward,
    sample_groups,
    sequence_logprobs,
    top1_reward,
)
from rarerank.rft import RFTConfig, RFTTask, batch_indices, lr_factor, train

N_PROMPTS, N_GENES = 8, 12

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GENE_IDS = list(range(2 + N_PROMPTS, 2 + N_PROMPTS + N_GENES))
SYMBOLS = [f"G{i}" for i in range(N_GENES)]


def tiny_model(seed: int = 0, vocab: int = 2 + N_PROMPTS + N_GENES) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, pad_token_id=0, tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def toy_task() -> RFTTask:
    """Prompt <bos> p_i must be answered with gene (3 i mod 12): learnable, and random scores ~0.15."""
    answers = [SYMBOLS[(3 * i) % N_GENES] for i in range(N_PROMPTS)]
    prompts = [[1, 2 + i] for i in range(N_PROMPTS)]
    return RFTTask(GENE_IDS, SYMBOLS, 0, lambda i, rng: prompts[i], answers, prompts, answers)


def toy_config(**overrides) -> RFTConfig:
    values = dict(group_size=8, cases_per_step=8, list_length=3, steps=30, learning_rate=1e-2, eval_interval=10,
                  eval_cases=None, checkpoint_interval=5, lora_rank=8, lora_alpha=16, synthetic_fraction=0.0, adapter="full")  # fmt: skip
    values.update(overrides)
    return RFTConfig(**values)


# ---------------------------------------------------------------------------------------------- rewards


def test_rank_reward_gives_the_graders_answers():
    completions = ["A B C", "C B A", "X Y", "b a"]
    genes = ["A", "A", "A", "B"]
    for grader in (GraderConfig(), GraderConfig("linear", k=4), GraderConfig("exponential", half_life=2.0)):
        reward = make_rank_reward(grader)(completions=completions, gene=genes, prompts=["p"] * 4)
        assert reward == pytest.approx([grade(c, g, grader) for c, g in zip(completions, genes)])
    assert make_rank_reward()(completions=completions, gene=genes) == pytest.approx([1.0, 1 / 3, 0.0, 1.0])
    assert make_rank_reward(GraderConfig("linear", k=4))(completions=completions, gene=genes) == pytest.approx([1.0, 0.5, 0.0, 1.0])
    # TRL's conversational completions (a list of messages) are graded on the last message's content.
    chat = [[{"role": "assistant", "content": "1. C\n2. A"}]]
    assert make_rank_reward()(completions=chat, gene=["A"]) == pytest.approx([0.5])


def test_other_rewards_and_weights():
    completions, genes = ["A B C", "C B A", "X Y"], ["A", "A", "A"]
    assert top1_reward(completions, gene=genes) == [1.0, 0.0, 0.0]
    assert make_hit_reward(2)(completions, gene=genes) == [1.0, 0.0, 0.0]
    rewards = build_rewards({"rank": 1.0, "top1": 0.5}, GraderConfig())
    assert combined_reward(rewards, completions, gene=genes) == pytest.approx([1.5, 1 / 3, 0.0])
    with pytest.raises(ValueError, match="unknown reward"):
        build_rewards({"rnk": 1.0}, GraderConfig())


def test_group_advantages_and_zero_variance():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5])
    adv, std, zero_var = group_advantages(rewards, 4)
    assert zero_var == 0.5
    assert adv[4:].abs().max() == 0
    assert adv[0] > 0 > adv[1] and adv[:4].sum().abs() < 1e-5
    centred, _, _ = group_advantages(rewards, 4, scale=False)
    assert centred[0] == pytest.approx(0.75)


def test_clipped_loss_and_kl():
    lp = torch.log(torch.tensor([[0.5, 0.5]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.25, 0.5]]))  # ratio 2 on the first token: clipped at 1.2
    loss, stats = grpo_loss(lp, old, torch.tensor([1.0]), 0.2, ref_logprobs=old, kl_coef=0.1)
    loss.backward()
    assert stats["clip_fraction"] == 0.5
    # k3 KL per token: exp(ref - lp) - (ref - lp) - 1 = 0.5 + log 2 - 1 on the first token, 0 on the second.
    assert stats["kl"] == pytest.approx((0.5 + math.log(2) - 1) / 2, abs=1e-6)
    # The clipped token gets no policy gradient, only the KL pull (0.1 * (1 - 0.5) / 2); the other -A/2.
    assert lp.grad[0].tolist() == pytest.approx([0.025, -0.5], abs=1e-6)


# ---------------------------------------------------------------------------------------------- sampling


def test_constrained_sampling_and_logprobs_agree():
    model = tiny_model()
    head = AllowedHead(model, GENE_IDS)
    prompts = Prompts.pad([[1, 2, 3], [1, 5], [1, 7, 8, 9]], 0)  # different lengths: left padding
    generator = torch.Generator().manual_seed(0)
    sample = sample_groups(model, prompts, head, 5, 6, temperature=0.7, generator=generator)
    assert sample.choices.shape == (15, 6)
    assert all(len(set(row)) == 6 for row in sample.choices.tolist())  # no gene twice
    assert int(sample.choices.max()) < N_GENES  # indices into the allowed (gene) tokens only
    recomputed = sequence_logprobs(model, prompts, head, sample.choices, 5, temperature=0.7)
    torch.testing.assert_close(recomputed, sample.logprobs, atol=1e-5, rtol=0)
    alone = sequence_logprobs(model, Prompts.pad([[1, 5]], 0), head, sample.choices[5:10], 5, temperature=0.7)
    torch.testing.assert_close(alone, sample.logprobs[5:10], atol=1e-5, rtol=0)  # padding changes nothing
    # Each step is a distribution over the genes not yet listed: probabilities sum to at most 1 per list.
    assert bool((sample.logprobs <= 0).all())


# ---------------------------------------------------------------------------------------------- loop


def test_grpo_raises_reward_on_a_toy_task():
    result = train(tiny_model(), toy_task(), toy_config(), progress=False)
    rows = result.state.rows
    first, last = rows[1:6], rows[-5:]
    assert sum(r["reward_mean"] for r in last) / 5 > sum(r["reward_mean"] for r in first) / 5 + 0.3
    assert rows[-1]["val_grader"] > rows[0]["val_grader"] + 0.3
    assert result.state.best_score == max(r["val_grader"] for r in rows if "val_grader" in r)


def test_lora_changes_adapter_weights_only():
    model = tiny_model()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train(model, toy_task(), toy_config(adapter="lora", steps=10, eval_interval=5), progress=False)
    peft_model = result.model
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(float(p.abs().sum()) > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at zero
    base_after = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in peft_model.named_parameters() if "lora_" not in n}
    assert set(base_after) == set(base_before)
    for name, before in base_before.items():
        assert torch.equal(before, base_after[name]), name


def _comparable(rows):
    timing = ("completions_per_s", "elapsed_s")
    return [{k: v for k, v in row.items() if k not in timing} for row in rows]


@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, adapter):
    config = toy_config(adapter=adapter, steps=12, lr_schedule="cosine", warmup_steps=2, kl_coef=0.05)
    whole = train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "a", fingerprint="x", progress=False)
    stopped = train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "b", fingerprint="x", stop_after=7, progress=False)
    assert stopped.interrupted and stopped.state.step == 7
    resumed = train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "b", fingerprint="x", progress=False)
    assert not resumed.interrupted and resumed.state.step == 12
    assert _comparable(resumed.state.rows) == _comparable(whole.state.rows)
    a, b = dict(whole.model.named_parameters()), dict(resumed.model.named_parameters())
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # A checkpoint for other settings is not resumed from.
    other = train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "b", fingerprint="y", stop_after=1, progress=False)
    assert other.state.step == 1


def test_batches_cover_every_case_each_epoch():
    steps = [batch_indices(s, 10, 4, seed=3) for s in range(5)]
    flat = [i for batch in steps for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert steps == [batch_indices(s, 10, 4, seed=3) for s in range(5)]


def test_learning_rate_schedules():
    assert [lr_factor(s, 10, 2, "constant") for s in (0, 1, 5)] == [0.5, 1.0, 1.0]
    assert lr_factor(2, 10, 2, "linear") == 1.0 and lr_factor(10, 10, 2, "linear") == 0.0
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"group_size": 1}, "at least 2"),
        ({"steps": None}, "exactly one of steps and epochs"),
        ({"epochs": 1.0}, "exactly one of steps and epochs"),
        ({"warmup_steps": 200, "steps": 100}, "lower warmup_steps"),
        ({"adapter": "lora", "lora_targets": ["lm_head"]}, "adapt projections only"),
        ({"adapter": "lora", "lora_dropout": 0.1}, "lora_dropout must be 0"),
        ({"rewards": {"rank": 0.0}}, "non-zero weight"),
        ({"clip_range": 1.5}, "clip_range"),
    ],
)
def test_invalid_config_fails_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        RFTConfig(**overrides)
    with pytest.raises(ValueError, match="unknown rft config key"):
        RFTConfig.from_mapping({"group_sise": 4})


# ---------------------------------------------------------------------------------------------- stage


def _stage_inputs(tmp_path):
    """A tiny policy and cases where gene g shows terms 3g..3g+2 (learnable from few cases)."""
    from rarerank.cases import Case, write_cases
    from rarerank.policy import PolicyConfig, build_policy

    genes = ["ABCA4", "COL1A1", "FBN1", "NF1", "PAH", "SCN1A"]
    terms = [f"HP:{i:07d}" for i in range(1, 31)]
    rng = torch.Generator().manual_seed(0)

    def cases(prefix, n):
        out = []
        for i in range(n):
            g = i % len(genes)
            picks = torch.randperm(3, generator=rng)[:2].tolist()
            present = tuple(terms[3 * g + p] for p in picks) + (terms[20 + i % 10],)
            out.append(Case(f"{prefix}{i}", genes[g], "PMID:1", genes[g], f"HGNC:{g}", "OMIM:1", present, (terms[18],)))
        return out

    write_cases(tmp_path / "train.tsv", cases("t", 36))
    write_cases(tmp_path / "validation.tsv", cases("v", 12))
    tiny = PolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, decode_k=3, output_k=6)
    build_policy(tiny, terms, genes, seed=0).save(tmp_path / "start")
    return tmp_path / "start", tmp_path / "train.tsv", tmp_path / "validation.tsv"


def test_rft_stage_resumes_from_files_and_saves_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from rarerank.cli import main

    start, train_tsv, val_tsv = _stage_inputs(tmp_path)
    settings = '{"steps": 8, "group_size": 4, "cases_per_step": 4, "list_length": 3, "learning_rate": 0.01, ' \
               '"eval_interval": 4, "checkpoint_interval": 4, "adapter": "lora", "lora_rank": 2, "lora_alpha": 4, ' \
               '"synthetic_fraction": 0}'  # fmt: skip

    def run(name, *extra):
        return main(["-q", "rft", "--model", str(start), "--train", str(train_tsv), "--validation", str(val_tsv),
                     "-o", str(tmp_path / name), "--log", str(tmp_path / f"{name}.tsv"), "--checkpoint",
                     str(tmp_path / f"{name}.ckpt"), "--settings", settings, "--threads", "1", "--no-progress", *extra])  # fmt: skip

    assert run("whole") == 0
    assert run("parts", "--stop-after", "5") == 0
    assert (tmp_path / "parts.ckpt" / "state.json").exists() and not (tmp_path / "parts").exists()
    assert run("parts") == 0  # resumes at step 5
    assert not (tmp_path / "parts.ckpt").exists()  # a finished run removes its checkpoint
    assert (tmp_path / "whole.tsv").read_bytes() == (tmp_path / "parts.tsv").read_bytes()
    assert (tmp_path / "whole" / "model.safetensors").read_bytes() == (tmp_path / "parts" / "model.safetensors").read_bytes()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "whole")  # LoRA merged: a plain model dir
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_synthetic_patients_join_each_step():
    calls = []
    task = toy_task()

    def synthetic(rng, n):
        calls.append(n)
        picks = rng.integers(N_PROMPTS, size=n)
        return [([1, 2 + int(i)], task.train_genes[int(i)]) for i in picks]

    task.sample_synthetic = synthetic
    result = train(tiny_model(), task, toy_config(steps=3, synthetic_fraction=0.25), progress=False)
    assert calls == [2, 2, 2] and result.state.step == 3  # 8 cases per step: 6 real + 2 synthetic
    with pytest.raises(ValueError, match="needs synthetic patients"):
        train(tiny_model(), toy_task(), toy_config(steps=1, synthetic_fraction=0.25), progress=False)


def test_until_hit_credit_ignores_tokens_after_the_true_gene():
    from rarerank.grpo import until_hit_weights

    choices = torch.tensor([[3, 1, 2], [0, 1, 2], [5, 6, 7]])
    weights = until_hit_weights(choices, torch.tensor([1, 0, -1]))
    assert weights.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    result = train(tiny_model(), toy_task(), toy_config(credit="until_hit"), progress=False)
    assert result.state.rows[-1]["val_grader"] > result.state.rows[0]["val_grader"] + 0.3
