"""ropelib.tasks and ropelib.text.haystack on tiny random models: the numbers are checked by hand,
the prompts token by token."""

import contextlib
import math
import random

import numpy as np
import pytest
import torch

from ropelib.core import extensions
from ropelib.models import organism
from ropelib.text.corpus import Document
from ropelib.text import haystack
from ropelib.text.haystack import FORMATS, NeedleFormat, build_prompt
from ropelib.models.organism import OrganismConfig
from ropelib.tasks import needle
from ropelib.tasks.common import MIN_LENGTH, check_lengths, check_memory
from ropelib.tasks.perplexity import long_documents, perplexity_by_length, sequence_losses
from ropelib.text.tokenizer import ByteTokenizer, encode_document

torch.set_num_threads(1)

TOK = ByteTokenizer()
MICRO = OrganismConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64,
                       head_dim=16, rope_base=100.0, train_length=64)
LINES = [f"line {i:03d} = value({i})\n" for i in range(200)]  # 20 tokens per line
HAYSTACK = "".join(LINES)


class BosEveryTime(ByteTokenizer):
    """A tokenizer whose ``encode`` adds BOS unless told not to, as many Hugging Face tokenizers do."""

    def encode(self, text, add_special_tokens=True):
        return super().encode(text, add_special_tokens=add_special_tokens)


@pytest.fixture(scope="module")
def tiny():
    return organism.build(MICRO, seed=0).eval()


# --- perplexity --------------------------------------------------------------------------------

def manual_losses(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]  # (L, vocab)
    log_p = torch.log_softmax(logits.double(), dim=-1)
    return torch.stack([-log_p[i, ids[i + 1]] for i in range(len(ids) - 1)])


def test_sequence_losses_equal_hand_computed_cross_entropy(tiny):
    ids = encode_document(TOK, HAYSTACK[:40])
    losses = sequence_losses(tiny, ids)
    assert losses.shape == (len(ids) - 1,)
    assert torch.allclose(losses.double(), manual_losses(tiny, ids), atol=1e-5)


@pytest.mark.parametrize("method", ["pi", "yarn", "dynamic_ntk"])
def test_one_shared_forward_gives_each_length_its_own_losses_unless_the_rope_depends_on_length(method):
    """Causal + static RoPE: slicing the longest pass equals a pass per length. Dynamic NTK rescales
    by the current length, so a shared pass would be wrong there: the flag says which is which."""
    model = extensions.apply(organism.build(MICRO, seed=0).eval(), method, 4.0, original_max_position=16)
    docs = [Document("a", HAYSTACK[:300]), Document("b", HAYSTACK[300:700])]
    apart = perplexity_by_length(model, TOK, [16, 32, 64], n_documents=2, documents=docs, progress=False)
    shared = perplexity_by_length(model, TOK, [16, 32, 64], n_documents=2, documents=docs, progress=False,
                                  share_forward=True)
    same = all(abs(x - y) < 1e-5 for x, y in zip(apart["loss_new"], shared["loss_new"]))
    assert same is not extensions.length_dependent(method)


def test_perplexity_by_length_truncates_the_same_documents(tiny):
    docs = [Document("short", "x" * 10), Document("a", HAYSTACK[:300]), Document("b", HAYSTACK[300:700])]
    table = perplexity_by_length(tiny, TOK, [16, 64], n_documents=2, method="rope", documents=docs, progress=False)
    assert list(table["document"]) == ["a", "b", "a", "b"] and set(table["method"]) == {"rope"}
    for row in table.itertuples():
        ids = encode_document(TOK, docs[1 if row.document == "a" else 2].text)[:row.length]
        expected = float(manual_losses(tiny, ids).mean())
        assert row.loss == pytest.approx(expected, abs=1e-5)
        assert row.ppl == pytest.approx(math.exp(expected), rel=1e-6)


def test_sliding_window_with_one_window_is_the_plain_protocol(tiny):
    docs = [Document("a", HAYSTACK[:200])]
    plain = perplexity_by_length(tiny, TOK, [64], n_documents=1, documents=docs, progress=False)
    sliding = perplexity_by_length(tiny, TOK, [64], n_documents=1, stride=32, documents=docs, progress=False)
    assert sliding["loss"].iloc[0] == pytest.approx(plain["loss"].iloc[0], abs=1e-6)


def test_perplexity_refuses_bad_input(tiny):
    docs = [Document("a", HAYSTACK[:100])]
    with pytest.raises(ValueError, match="only 1 documents"):
        long_documents(TOK, 50, 2, docs)
    with pytest.raises(ValueError, match="n_documents"):
        perplexity_by_length(tiny, TOK, [16], n_documents=0, documents=docs)
    with pytest.raises(ValueError, match="stride"):
        perplexity_by_length(tiny, TOK, [16, 32], stride=17, documents=docs)


# --- common checks -----------------------------------------------------------------------------

def test_check_lengths():
    assert check_lengths(64) == [64]
    assert check_lengths([8, 256.0]) == [8, 256]
    with pytest.raises(ValueError, match="empty"):
        check_lengths([])
    with pytest.raises(ValueError, match=rf"\[4\]: every context length must be >= {MIN_LENGTH}"):
        check_lengths([4, 64], name="lengths")


def test_check_memory_refuses_an_impossible_length(tiny):
    check_memory(tiny, 1024)
    with pytest.raises(MemoryError, match=r"length=1000000000 .* GiB"):
        check_memory(tiny, 10**9)


# --- needle placement ----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [0, 10, 25, 50, 90, 100])
def test_needle_lands_at_the_depth_on_a_line_boundary(depth):
    hay = TOK.encode(HAYSTACK)
    prompt = build_prompt(TOK, hay, 512, depth, "48213")
    ids = prompt.input_ids
    fmt = NeedleFormat()
    assert len(ids) == 512
    assert ids[0] == TOK.bos_token_id and ids.count(TOK.bos_token_id) == 1
    assert TOK.decode(ids[prompt.needle_start:prompt.needle_end]) == fmt.needle.format(value="48213")
    assert TOK.decode(ids[prompt.value_start:prompt.value_start + 5]) == "48213"
    assert TOK.decode(ids[-len(TOK.encode(fmt.question)):]) == fmt.question
    if depth < 100:
        assert prompt.needle_start == 1 or TOK.decode(ids[:prompt.needle_start]).endswith("\n")
    else:  # 100%: right after the whole kept haystack, just before the question (may follow a cut line)
        assert prompt.needle_end == len(ids) - len(TOK.encode(fmt.question)) and prompt.actual_depth == 100
    # the last line start at or before the target: at most one line (20 tokens) early
    n_hay = 512 - 1 - (prompt.needle_end - prompt.needle_start) - len(TOK.encode(fmt.question))
    assert prompt.actual_depth <= depth + 1e-9
    assert depth - prompt.actual_depth < 100 * 20 / n_hay
    hay_in_prompt = ids[1:prompt.needle_start] + ids[prompt.needle_end:-len(TOK.encode(fmt.question))]
    assert hay_in_prompt == hay[:n_hay]  # the haystack is cut, never reordered


@pytest.mark.parametrize("depth", [0, 33.3, 50, 100])
def test_training_placement_is_at_the_exact_token(depth):
    """Training inserts needles at any token (``at_line_boundary=False``), not only after a newline."""
    hay = TOK.encode(HAYSTACK)
    prompt = build_prompt(TOK, hay, 128, depth, "48213", at_line_boundary=False)
    fmt = NeedleFormat()
    n_hay = 128 - 1 - len(TOK.encode(fmt.needle.format(value="48213"))) - len(TOK.encode(fmt.question))
    assert prompt.needle_start == 1 + round(depth / 100 * n_hay)
    assert prompt.input_ids.count(TOK.bos_token_id) == 1 and len(prompt.input_ids) == 128


def test_no_bos_mid_sequence_with_a_bos_happy_tokenizer():
    tok = BosEveryTime()
    assert tok.encode("a") == [tok.bos_token_id, ord("a")]  # the pitfall
    hay = tok.encode(HAYSTACK, add_special_tokens=False)
    for fmt in FORMATS.values():
        prompt = build_prompt(tok, hay, 400, 50, "12345", fmt)
        assert prompt.input_ids[0] == tok.bos_token_id and prompt.input_ids.count(tok.bos_token_id) == 1
    assert tok.bos_token_id not in needle.haystack_tokens(tok, [HAYSTACK[:100], HAYSTACK[100:200]])


def test_build_prompt_refuses_bad_input():
    hay = TOK.encode(HAYSTACK)
    with pytest.raises(ValueError, match=r"depth=101 must be in \[0, 100\]"):
        build_prompt(TOK, hay, 256, 101, "12345")
    fmt = NeedleFormat()
    no_room = 1 + len(TOK.encode(fmt.needle.format(value="12345"))) + len(TOK.encode(fmt.question))
    with pytest.raises(ValueError, match="too short for the needle"):
        build_prompt(TOK, hay, no_room, 50, "12345")
    assert len(build_prompt(TOK, hay, no_room + 1, 50, "12345").input_ids) == no_room + 1
    with pytest.raises(ValueError, match="haystack has 10 tokens"):
        build_prompt(TOK, hay[:10], 256, 50, "12345")


def test_needle_values_are_seeded_five_digit_numbers():
    fmt = NeedleFormat()
    values = [fmt.value(random.Random(7)) for _ in range(2)]
    assert values[0] == values[1] and len(values[0]) == 5 and values[0].isdigit() and values[0][0] != "0"


# --- the borrowed-from locator -------------------------------------------------------------------

def test_find_occurrences_finds_a_planted_distractor_and_skips_the_needle():
    context = [1, 2, 3, 9, 9, 4, 2, 7, 9, 9, 9, 4, 2, 7, 1]
    assert needle.find_occurrences(context, [4, 2, 7]) == [5, 11]
    assert needle.find_occurrences(context, [4, 2, 7], exclude=range(10, 15)) == [5]
    assert needle.find_occurrences(context, [4, 2, 7], exclude=range(12, 13)) == [5]  # overlap counts
    assert needle.find_occurrences(context, []) == []
    assert needle.find_occurrences(context, [8]) == []


def test_wrong_answer_is_traced_to_the_planted_distractor():
    planted = "x = 54321\n"
    hay = TOK.encode("".join(LINES[:5]) + planted + "".join(LINES[5:]))
    prompt = build_prompt(TOK, hay, 400, 80, "12345")
    distractor = 1 + len(TOK.encode("".join(LINES[:5]))) + len("x = ")  # BOS + lines before
    assert TOK.decode(prompt.input_ids[distractor:distractor + 5]) == "54321"
    generated = TOK.encode("54321\n")
    keys = len(prompt.input_ids) + len(generated) - 1
    rows = torch.zeros(1, 1, len(generated), keys)  # (layers, heads, answer tokens, keys)
    rows[..., distractor] = 0.75
    rows[..., prompt.value_start] = 0.25
    record = needle._trial_record(TOK, prompt, generated, rows, answer_len=5)
    assert not record["passed"] and record["answer"] == "54321"
    assert record["borrowed"] and record["borrowed_positions"] == str(distractor)
    assert record["borrowed_mass"] == pytest.approx(0.75)
    assert record["needle_mass"] == pytest.approx(0.25)
    assert record["entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_right_answer_borrows_nothing():
    prompt = build_prompt(TOK, TOK.encode(HAYSTACK), 200, 50, "12345")
    generated = TOK.encode("12345\n")
    rows = torch.full((1, 1, 6, len(prompt.input_ids) + 5), 1 / (len(prompt.input_ids) + 5))
    record = needle._trial_record(TOK, prompt, generated, rows, answer_len=5)
    assert record["passed"] and not record["borrowed"] and record["borrowed_mass"] == 0.0


# --- the needle grid end to end ------------------------------------------------------------------

def test_needle_grid_runs_a_tiny_model(tiny):
    docs = [HAYSTACK, HAYSTACK[::-1]]
    trials = needle.needle_grid(tiny, TOK, [64, 96], depths=[0, 50, 100], needles_per_cell=2, seed=1,
                                method="rope", documents=docs, progress=False)
    assert len(trials) == 2 * 3 * 2
    assert list(trials.groupby(["length", "depth"]).size()) == [2] * 6
    assert trials["entropy"].between(0, math.log(96 + 5)).all()
    assert trials["needle_mass"].between(0, 1).all()
    again = needle.needle_grid(tiny, TOK, [64, 96], depths=[0, 50, 100], needles_per_cell=2, seed=1,
                               method="rope", documents=docs, progress=False)
    assert trials.equals(again)
    cells = needle.cell_table(trials)
    assert len(cells) == 6 and cells["trials"].eq(2).all()


def test_one_prefill_per_trial_gives_the_two_pass_rows(tiny):
    # the teacher-forced rows from the generation's cache equal the second full pass's, to float rounding
    docs = [HAYSTACK, HAYSTACK[::-1]]
    settings = dict(depths=[0, 50, 100], needles_per_cell=2, seed=1, method="rope", documents=docs, progress=False)
    two = needle.needle_grid(tiny, TOK, [64, 96], **settings)
    one = needle.needle_grid(tiny, TOK, [64, 96], share_prefill=True, **settings)
    assert one.drop(columns="entropy_teacher").equals(two.drop(columns="entropy_teacher"))
    assert np.allclose(one["entropy_teacher"], two["entropy_teacher"], rtol=0, atol=1e-5)
    assert not one["entropy_teacher"].isna().any()


@pytest.mark.parametrize("chunk", [needle.PREFILL_CHUNK, 7])
def test_a_shared_prefix_gives_the_full_pass_rows(tiny, chunk, monkeypatch):
    # issue 35: a cell's needles on one haystack; the text before the value computed once (KV cache),
    # each prompt's rest fed in one pass (the tiny prompts are shorter than a chunk) or in chunks of 7
    monkeypatch.setattr(needle, "PREFILL_CHUNK", chunk)
    docs = [HAYSTACK, HAYSTACK[::-1]]
    settings = dict(depths=[10, 50, 90], needles_per_cell=3, seed=1, method="rope", documents=docs, progress=False,
                    shared_haystack=True)
    full = needle.needle_grid(tiny, TOK, [64, 96], **settings)
    shared = needle.needle_grid(tiny, TOK, [64, 96], share_prefill=True, share_prefix=True, **settings)
    assert full["haystack"].nunique() == 6 and full.groupby("haystack")["value"].nunique().eq(3).all()
    numbers = ["entropy", "entropy_first", "entropy_teacher", "needle_mass", "borrowed_mass"]
    assert shared.drop(columns=numbers).equals(full.drop(columns=numbers))
    assert np.allclose(shared[numbers], full[numbers], rtol=0, atol=1e-5)
    prompts, control = haystack.shared_prompts(TOK, needle.haystack_tokens(TOK, docs), 96, 50, 3, 1,
                                               FORMATS["compact"])
    prefix = needle.common_prefix(prompts)
    assert 0 < prefix == min(p.value_start for p in prompts)  # everything before the value is shared
    assert control.input_ids[1:prefix] != prompts[0].input_ids[1:prefix]  # the by-chance text is another haystack
    assert needle.common_prefix(prompts[:1]) == 0


@pytest.mark.parametrize("method", ["rope", "dynamic_ntk"])
def test_a_shared_prefix_with_its_own_teacher_pass_gives_the_full_pass_rows(method, monkeypatch):
    # issue 35, dynamic NTK (its base depends on the length): the prefix and the chunks rotated as one pass
    # over the prompt, the teacher-forced rows from a second prefix, not from the generation's cache
    monkeypatch.setattr(needle, "PREFILL_CHUNK", 7)
    model = extensions.apply(organism.build(MICRO, seed=0).eval(), method, 2.0)
    settings = dict(depths=[10, 50, 90], needles_per_cell=3, seed=1, method=method,
                    documents=[HAYSTACK, HAYSTACK[::-1]], progress=False, shared_haystack=True)
    numbers = ["entropy", "entropy_first", "entropy_teacher", "needle_mass", "borrowed_mass"]
    full = needle.needle_grid(model, TOK, [96, 128], **settings)  # past L0 = 64: dynamic NTK rescales
    shared = needle.needle_grid(model, TOK, [96, 128], share_prefix=True, **settings)
    assert shared.drop(columns=numbers).equals(full.drop(columns=numbers))
    assert np.allclose(shared[numbers], full[numbers], rtol=0, atol=1e-5)
    if method == "dynamic_ntk":  # without one length's rotation the pieces differ: the check can fail
        monkeypatch.setattr(extensions, "rotation_of_length", lambda model, length: contextlib.nullcontext())
        unfixed = needle.needle_grid(model, TOK, [96, 128], share_prefix=True, **settings)
        assert not np.allclose(unfixed[numbers], full[numbers], rtol=0, atol=1e-4)


def test_needle_grid_refuses_bad_input(tiny):
    with pytest.raises(ValueError, match=r"every depth must be in \[0, 100\]"):
        needle.needle_grid(tiny, TOK, [64], depths=[-5], documents=[HAYSTACK], progress=False)
    with pytest.raises(ValueError, match="needles_per_cell=0"):
        needle.needle_grid(tiny, TOK, [64], needles_per_cell=0, documents=[HAYSTACK], progress=False)
    with pytest.raises(ValueError, match=">= 8"):
        needle.needle_grid(tiny, TOK, [4], documents=[HAYSTACK], progress=False)
