"""GRPO core and the RFT loop on tiny models: learning, LoRA, exact resume, rewards, config checks."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rarerank.core.grader import GraderConfig, grade
from rarerank.model.decoding import left_pad, list_logprobs, sample_lists
from rarerank.model.policy import gene_scorer
from rarerank.train.grpo import (
    build_rewards,
    combined_reward,
    group_advantages,
    grpo_loss,
    make_hit_reward,
    make_rank_reward,
    top1_reward,
)
from rarerank.train.rft import RFTConfig, RFTTask, stream_indices, train
from rarerank.train.training import lr_at

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
    values = dict(group_size=8, cases_per_step=8, list_length=3, max_steps=30, learning_rate=1e-2, eval_interval=10,
                  eval_cases=None, checkpoint_interval=5, lora_rank=8, lora_alpha=16, synthetic_fraction=0.0, adapter="full",
                  warmup_steps=0, lr_schedule="constant")  # fmt: skip
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


@pytest.mark.model
@pytest.mark.parametrize("decode_k", [1, 3, 6])
def test_constrained_sampling_and_logprobs_agree(decode_k):
    model = tiny_model()
    scorer = gene_scorer(model, torch.tensor(GENE_IDS))
    ids, mask = left_pad([[1, 2, 3], [1, 5], [1, 7, 8, 9]], 0)  # different lengths: left padding
    generator = torch.Generator().manual_seed(0)
    sample = sample_lists(scorer, ids, mask, 6, 5, decode_k, temperature=0.7, generator=generator)
    assert sample.genes.shape == (15, 6)
    assert all(len(set(row)) == 6 for row in sample.genes.tolist())  # no gene twice
    assert int(sample.genes.max()) < N_GENES  # indices into the allowed (gene) tokens only
    recomputed = list_logprobs(scorer, ids, mask, sample.genes, 5, decode_k, temperature=0.7)
    torch.testing.assert_close(recomputed, sample.logprobs, atol=1e-5, rtol=0)
    alone = list_logprobs(scorer, *left_pad([[1, 5]], 0), sample.genes[5:10], 5, decode_k, temperature=0.7)
    torch.testing.assert_close(alone, sample.logprobs[5:10], atol=1e-5, rtol=0)  # padding changes nothing
    assert bool((sample.logprobs <= 0).all())


@pytest.mark.model
def test_ranking_lists_are_plackett_luce_draws_from_the_first_step():
    """decode_k 1: a list's log-prob is that of drawing it without replacement from the first-step softmax."""
    model = tiny_model()
    scorer = gene_scorer(model, torch.tensor(GENE_IDS))
    ids, mask = left_pad([[1, 4]], 0)
    sample = sample_lists(scorer, ids, mask, 4, 3, 1, generator=torch.Generator().manual_seed(2))
    first = sample.first_logits[0].double()
    for row, lp in zip(sample.genes.tolist(), sample.logprobs):
        left, expected = first.clone(), []
        for g in row:
            expected.append(float(torch.log_softmax(left, 0)[g]))
            left[g] = float("-inf")
        assert lp.tolist() == pytest.approx(expected, abs=1e-5)
    greedy = sample_lists(scorer, ids, mask, 4, 1, 1, greedy=True)
    assert greedy.genes[0].tolist() == first.argsort(descending=True)[:4].tolist()


# ---------------------------------------------------------------------------------------------- loop


@pytest.mark.model
def test_grpo_raises_reward_on_a_toy_task():
    result = train(tiny_model(), toy_task(), toy_config(), progress=False)
    rows = result.state.rows
    first, last = rows[1:6], rows[-5:]
    assert sum(r["reward_mean"] for r in last) / 5 > sum(r["reward_mean"] for r in first) / 5 + 0.3
    assert rows[-1]["val_grader"] > rows[0]["val_grader"] + 0.3
    assert result.best.score == max(r["val_grader"] for r in rows if "val_grader" in r)


@pytest.mark.model
def test_lora_changes_adapter_weights_only():
    model = tiny_model()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train(model, toy_task(), toy_config(adapter="lora", max_steps=10, eval_interval=5), progress=False)
    peft_model = result.model
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(float(p.abs().sum()) > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at zero
    base_after = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in peft_model.named_parameters() if "lora_" not in n
    }
    assert set(base_after) == set(base_before)
    for name, before in base_before.items():
        assert torch.equal(before, base_after[name]), name


def _comparable(rows):
    timing = ("completions_per_s", "elapsed_s")
    return [{k: v for k, v in row.items() if k not in timing} for row in rows]


@pytest.mark.model
@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, adapter):
    config = toy_config(adapter=adapter, max_steps=12, lr_schedule="cosine", warmup_steps=2, kl_coef=0.05)
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
    steps = [stream_indices(4 * s, 4, 10, seed=3) for s in range(5)]
    flat = [i for batch in steps for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert steps == [stream_indices(4 * s, 4, 10, seed=3) for s in range(5)]


def test_learning_rate_schedules():
    assert [lr_at(s, 10, 1.0, 2, schedule="constant") for s in (0, 1, 5)] == [0.5, 1.0, 1.0]
    assert lr_at(2, 10, 1.0, 2, schedule="linear") == 1.0 and lr_at(10, 10, 1.0, 2, schedule="linear") == 0.0
    assert lr_at(6, 10, 1.0, 2, schedule="cosine") == pytest.approx(0.5)
    assert lr_at(10, 10, 1.0, 2, 0.1, "linear") == pytest.approx(0.1)  # decays to the floor


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"group_size": 1}, "rft.group_size must be >= 2 and <= 1024, not 1"),
        ({"max_steps": None}, "exactly one of max_steps and epochs"),
        ({"epochs": 1.0}, "exactly one of max_steps and epochs"),
        ({"warmup_steps": 200, "max_steps": 100}, "lower warmup_steps"),
        ({"list_sampling": "beam"}, "list_sampling must be one of"),
        ({"adapter": "lora", "lora_targets": ["lm_head"]}, "adapt projections only"),
        ({"adapter": "lora", "lora_dropout": 0.1}, "rft.lora_dropout must be >= 0 and <= 0, not 0.1"),
        ({"rewards": {"rank": 0.0}}, "non-zero weight"),
        ({"clip_range": 1.5}, "clip_range"),
    ],
)
def test_invalid_config_fails_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        RFTConfig(**overrides)
    with pytest.raises(ValueError, match="unknown rft setting"):
        RFTConfig.from_dict({"group_sise": 4})


# ---------------------------------------------------------------------------------------------- stage


def _stage_inputs(tmp_path):
    """A tiny policy and cases where gene g shows terms 3g..3g+2 (learnable from few cases)."""
    from rarerank.data.cases import Case, write_cases
    from rarerank.model.policy import PolicyConfig, build_policy

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


@pytest.mark.model
def test_rft_stage_resumes_from_files_and_saves_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from rarerank.cli import main

    start, train_tsv, val_tsv = _stage_inputs(tmp_path)
    settings = '{"max_steps": 8, "group_size": 4, "cases_per_step": 4, "list_length": 3, "learning_rate": 0.01, ' \
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


@pytest.mark.model
def test_synthetic_patients_join_each_step():
    calls = []
    task = toy_task()

    def synthetic(rng, n):
        calls.append(n)
        picks = rng.integers(N_PROMPTS, size=n)
        return [([1, 2 + int(i)], task.train_genes[int(i)]) for i in picks]

    task.sample_synthetic = synthetic
    result = train(tiny_model(), task, toy_config(max_steps=3, synthetic_fraction=0.25), progress=False)
    assert calls == [2, 2, 2] and result.state.step == 3  # 8 cases per step: 6 real + 2 synthetic
    with pytest.raises(ValueError, match="needs synthetic patients"):
        train(tiny_model(), toy_task(), toy_config(max_steps=1, synthetic_fraction=0.25), progress=False)


@pytest.mark.model
def test_until_hit_credit_ignores_tokens_after_the_true_gene():
    from rarerank.train.grpo import until_hit_weights

    choices = torch.tensor([[3, 1, 2], [0, 1, 2], [5, 6, 7]])
    weights = until_hit_weights(choices, torch.tensor([1, 0, -1]))
    assert weights.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    result = train(tiny_model(), toy_task(), toy_config(credit="until_hit"), progress=False)
    assert result.state.rows[-1]["val_grader"] > result.state.rows[0]["val_grader"] + 0.3


# ---------------------------------------------------------------------------------------------- levers and safety


@pytest.mark.model
def test_filter_groups_drops_groups_without_reward_spread():
    """Known answer: a case whose every list scores alike (its gene is not in the vocabulary: reward 0)
    is dropped, and more cases are drawn to fill the batch with groups that carry signal."""
    from rarerank.train.rft import GRPORun

    task = toy_task()
    task.train_genes = ["NOT_A_GENE" if i % 2 else g for i, g in enumerate(task.train_genes)]
    config = toy_config(max_steps=1, cases_per_step=4, filter_groups=True, max_sample_rounds=4, list_length=3)
    run = GRPORun(tiny_model(), task, config, GraderConfig(), None, "")
    batch, stats = run.next_batch(0)
    assert "NOT_A_GENE" not in batch.genes  # every dropped group had no spread
    spread = batch.rewards.view(-1, config.group_size)
    assert bool(((spread.max(1).values - spread.min(1).values) > 0).all())
    assert stats["groups_used"] == len(batch.genes) <= 4
    assert stats["cases_seen"] > 4  # more than one draw of cases_per_step was needed
    assert stats["zero_variance_fraction"] >= 0.5  # half the cases sampled cannot score
    plain = GRPORun(tiny_model(), task, toy_config(max_steps=1, cases_per_step=4), GraderConfig(), None, "")
    unfiltered, _ = plain.next_batch(0)
    assert "NOT_A_GENE" in unfiltered.genes and len(unfiltered.genes) == 4


@pytest.mark.model
def test_a_pickle_in_a_checkpoint_is_refused_without_running(tmp_path):
    import pickle

    config = toy_config(max_steps=4, checkpoint_interval=2)
    train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "ckpt", fingerprint="x", stop_after=2, progress=False)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["optimizer.safetensors", "rng.safetensors", "state.json", "weights.safetensors"]
    witness = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(witness), "w"))

    (tmp_path / "ckpt" / "trainable.pt").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ValueError, match="trainable.pt.*pickles are never loaded"):
        train(tiny_model(), toy_task(), config, checkpoint_dir=tmp_path / "ckpt", fingerprint="x", progress=False)
    assert not witness.exists()
    pickle.loads((tmp_path / "ckpt" / "trainable.pt").read_bytes())  # the crafted file does create it when unpickled
    assert witness.exists()


@pytest.mark.model
def test_selection_metric_equals_what_predict_produces(tmp_path):
    """The validation score RFT selects on is the grader/top-1 of the ranking `predict` writes for the same weights."""
    from rarerank.data.cases import read_cases
    from rarerank.model.policy import load_policy, prompt_token_ids
    from rarerank.rank.ranking import rank_cases
    from rarerank.train.rft import evaluate, run_rft

    start, train_tsv, val_tsv = _stage_inputs(tmp_path)
    config = RFTConfig(max_steps=4, group_size=4, cases_per_step=4, list_length=3, learning_rate=0.01, eval_interval=2,
                       adapter="full", synthetic_fraction=0, eval_cases=None, warmup_steps=0)  # fmt: skip
    grader = GraderConfig()
    summary = run_rft(start, train_tsv, val_tsv, tmp_path / "out", tmp_path / "log.tsv", config=config, grader=grader,
                      progress=False, device="cpu")  # fmt: skip
    policy = load_policy(tmp_path / "out")
    cases = read_cases(val_tsv)
    predicted = dict(rank_cases(policy, cases, top_k=len(policy.genes)))
    ranks = []
    for case in cases:
        found = [g.rank for g in predicted[case.case_id] if g.gene_symbol == case.gene]
        ranks.append(found[0] if found else None)
    cfg = policy.config
    prompts = [prompt_token_ids(policy.tokenizer, c.present, c.absent, None, False, cfg.max_present_terms, cfg.max_absent_terms)
               for c in cases]  # fmt: skip
    scorer = gene_scorer(policy.model, policy.gene_ids)
    score, top1, eval_ranks = evaluate(scorer, prompts, [c.gene for c in cases], policy.genes, policy.tokenizer.pad_token_id,
                                       grader, policy.config.decode_k)  # fmt: skip
    assert eval_ranks == ranks
    assert top1 == pytest.approx(sum(r == 1 for r in ranks) / len(ranks))
    assert score == pytest.approx(sum(grader.score_rank(r) for r in ranks) / len(ranks))
    assert summary["best_val_grader"] == pytest.approx(score, abs=1e-6)  # the kept weights score what was selected
