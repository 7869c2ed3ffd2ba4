"""The retrieval gate runs on the evaluation's needles: its format, its depth grid, the dev split, >= 100 per length."""

import torch

from ropelib.core.stats import proportion_interval
from ropelib.models.manifest import RETRIEVAL_GATE
from ropelib.tasks.needle import haystack_tokens
from ropelib.text import corpus
from ropelib.text.haystack import FORMATS, cell_prompts
from ropelib.text.tokenizer import ByteTokenizer
from ropelib.training import recipes

MARKER = ByteTokenizer().marker_token_id


class Oracle(torch.nn.Module):
    """Answers a needle's value when it sits at most ``max_depth`` (fraction) into the prompt, else 00000;
    records the prompts it was given."""

    def __init__(self, max_depth: float = 1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.max_depth, self.prompts = max_depth, []

    def generate(self, ids, max_new_tokens, **_):
        out = []
        for row in ids.tolist():
            self.prompts.append(row)
            at = row.index(MARKER)  # the needle's marker; the question's is the last token
            value = row[at + 1:at + 6] if at / len(row) <= self.max_depth else [ord("0")] * 5
            out.append(row + (value + [ord("\n")] * max_new_tokens)[:max_new_tokens])
        return torch.tensor(out)


def test_the_gate_has_enough_needles_to_pass_and_20_never_could():
    assert recipes.GATE_NEEDLES >= 100 and recipes.GATE_DEPTHS == tuple(range(0, 101, 10))
    assert proportion_interval(recipes.GATE_NEEDLES, recipes.GATE_NEEDLES).low >= RETRIEVAL_GATE
    assert proportion_interval(20, 20).low < RETRIEVAL_GATE  # the old per-length n of the findings: never passes


def test_a_model_that_retrieves_only_shallow_needles_misses_the_gate():
    spec = recipes.SPECS["cpt-pi"]
    rows = recipes.gate(Oracle(max_depth=0.5), spec)
    assert [r["length"] for r in rows] == [256, 1024] and all(r["needles"] == recipes.GATE_NEEDLES for r in rows)
    assert not any(r["passed"] for r in rows)  # the deep half of the grid is failed: an easy-needle gate would pass
    assert {(r["needle_format"], r["split"], r["depths"]) for r in rows} == {("compact", "dev", 11)}
    assert all(r["passed"] for r in recipes.gate(Oracle(), spec))


def test_the_gate_asks_the_evaluations_prompts_on_the_dev_split():
    tokenizer, oracle = ByteTokenizer(), Oracle()
    hits, n = recipes.gate_hits(oracle, 256, per_depth=2, tokenizer=tokenizer)
    assert (hits, n) == (2 * len(recipes.GATE_DEPTHS), 2 * len(recipes.GATE_DEPTHS))
    hay = haystack_tokens(tokenizer, corpus.stdlib_documents("dev"))
    expected = [p.input_ids for depth in recipes.GATE_DEPTHS
                for p in cell_prompts(tokenizer, hay, 256, depth, 2, recipes.GATE_SEED, FORMATS["compact"])]
    assert oracle.prompts == expected  # the evaluation's builder: line-boundary needles on its depth grid
    test_hay = haystack_tokens(tokenizer, corpus.stdlib_documents("test"))
    assert not any(p == q.input_ids for p in oracle.prompts
                   for q in cell_prompts(tokenizer, test_hay, 256, 0, 2, recipes.GATE_SEED, FORMATS["compact"]))
