"""The run plan, parameter validation, the cache and atomic outputs of the runner.

Executions use tiny throwaway chapters in tmp_path (a kernel start and a print), so the
whole module runs in well under a minute.
"""

import json
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import ropelib
from ropelib.publish import cli, params, plan, runner
from ropelib.paths import ROOT

TINY_PARAMETERS = """\
n = 3  # how many times to repeat the word [1, 10]
word = "hi"  # the word to repeat {hi, yo}
scale = 1.5  # a positive scale (0, 10]
flag = False  # whether to shout
items = [1, 2]  # numbers to add up, each in [0, 5]
size = 8  # an even size [2, 64] even
"""
BOOM_PARAMETERS = 'fail = True  # raise on purpose to test failures\n'


def _template(path, parameters, body, title="# A tiny chapter"):
    nb = new_notebook(
        cells=[new_markdown_cell(title), new_code_cell(parameters, metadata={"tags": ["parameters"]}),
               new_code_cell(body)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)


@pytest.fixture
def book(tmp_path):
    """A throwaway book root: chapters/tiny.ipynb, chapters/boom.ipynb, book/runs.yml."""
    (tmp_path / "chapters").mkdir()
    (tmp_path / "book").mkdir()
    _template(tmp_path / "chapters" / "tiny.ipynb", TINY_PARAMETERS,
              "print(word * n, scale * 2, flag, sum(items), size)")
    _template(tmp_path / "chapters" / "boom.ipynb", BOOM_PARAMETERS,
              'x = 1\nif fail:\n    raise ValueError("boom on purpose")')
    write_plan(tmp_path, [{"chapter": "tiny", "output": "tiny-a.ipynb", "title": "Tiny A", "parameters": {"n": 2}}])
    return plan.Layout(tmp_path)


def write_plan(root, entries):
    (root / "book" / "runs.yml").write_text(json.dumps(entries))  # JSON is YAML


def run_plan(layout, force=False):
    runs = plan.load(layout)
    resolved = plan.check(runs, layout)
    jobs = [runner.Job(r.chapter, resolved[r.output], layout.book / r.output, r.title, reads=r.reads) for r in runs]
    return runner.execute_all(jobs, layout, force=force, echo=lambda *a, **k: None)



def test_a_page_that_reads_kept_trials_back_records_what_it_costs_from_an_empty_cache(book):
    """The wall time of a re-run that reads its trials back is not the page's cost (benchmarks/book.py)."""
    kept = book.root / "kept"
    _template(book.root / "chapters" / "kept.ipynb", 'n = 1  # which run [1, 10]\n',
              "import time\nfrom ropelib.tasks import trials\n"
              f"store = trials.Store({{'model': 'm'}}, {str(kept)!r})\n"
              "store.arrays('slow', {}, lambda: (time.sleep(1.5), {'x': [1.0]})[1])\nprint(store.hits, store.misses)")
    for n in (1, 2):
        write_plan(book.root, [{"chapter": "kept", "output": "kept.ipynb", "title": "Kept", "parameters": {"n": n}}])
        run_plan(book)
        record = json.loads(book.timings.read_text())["book/kept.ipynb"]
        if n == 1:
            assert record["trials"]["computed"] == 1 and record["seconds_from_empty_cache"] == record["seconds"]
    assert (record["trials"]["computed"], record["trials"]["read_back"]) == (0, 1)
    assert record["trials"]["read_back_seconds"] >= 1.5
    assert record["seconds_from_empty_cache"] == round(record["seconds"] + record["trials"]["read_back_seconds"], 1)
    assert nbformat.read(book.book / "kept.ipynb", as_version=4).metadata["ropebook"]["trials"] == record["trials"]

# --- the plan ---------------------------------------------------------------------


def test_plan_parses_entries_in_order(book):
    write_plan(book.root, [
        {"chapter": "tiny", "output": "one.ipynb", "title": "One", "part": "P"},
        {"chapter": "tiny", "output": "two.ipynb", "title": "Two", "part": "P", "parameters": {"n": 5}},
    ])
    runs = plan.load(book)
    assert [r.output for r in runs] == ["one.ipynb", "two.ipynb"]
    assert runs[1].parameters == {"n": 5} and runs[0].part == "P"


@pytest.mark.parametrize("entries, message", [
    ([{"chapter": "nope", "output": "x.ipynb", "title": "X"}], "unknown chapter 'nope'"),
    ([{"chapter": "tiny", "output": "x.ipynb", "title": "X"}] * 2, "duplicate output 'x.ipynb'"),
    ([{"chapter": "tiny", "output": "x.ipynb"}], "missing title"),
    ([{"chapter": "tiny", "output": "x.ipynb", "title": "X", "params": {}}], "unknown key 'params'"),
    ([{"chapter": "tiny", "output": "sub/x.ipynb", "title": "X"}], "output must be a notebook file name"),
    ([{"chapter": "tiny", "output": "a.ipynb", "title": "A", "part": "P"},
      {"chapter": "tiny", "output": "b.ipynb", "title": "B", "part": "Q"},
      {"chapter": "tiny", "output": "c.ipynb", "title": "C", "part": "P"}], "must be consecutive"),
    ({"chapter": "tiny"}, "must be a YAML list"),
])
def test_plan_errors_are_one_clear_line(book, entries, message):
    write_plan(book.root, entries)
    with pytest.raises(plan.PlanError, match=message) as error:
        plan.load(book)
    assert "\n" not in str(error.value)


def test_toc_lists_intro_plan_pages_then_back_matter(book):
    write_plan(book.root, [{"chapter": "tiny", "output": "one.ipynb", "title": "One", "part": "P"}])
    text = plan.toc(plan.load(book))
    assert text.index("root: book/intro") < text.index("book/one") < text.index("book/reproduce") \
        < text.index("book/references")


def test_committed_toc_is_generated_from_the_plan():
    layout = plan.default_layout()
    assert layout.toc.read_text() == plan.toc(plan.load(layout)), "run `ropebook toc` and commit _toc.yml"


def test_committed_plan_is_valid():
    layout = plan.default_layout()
    plan.check(plan.load(layout), layout)


# --- parameter declarations and validation -------------------------------------------


def test_declared_reads_types_defaults_ranges_and_help(book):
    declared = params.declared(book.template("tiny"))
    assert list(declared) == ["n", "word", "scale", "flag", "items", "size"]
    assert declared["n"].type == "int" and declared["n"].default == 3 and (declared["n"].low, declared["n"].high) == (1, 10)
    assert declared["word"].choices == ("hi", "yo")
    assert declared["scale"].low_open and declared["scale"].type == "float"
    assert declared["flag"].type == "bool" and declared["flag"].description == "whether to shout"
    assert declared["items"].type == "list[int]" and declared["items"].description == "numbers to add up"
    assert declared["size"].even


@pytest.mark.parametrize("given, name, problem", [
    ({"lenght": 3}, "lenght", "unknown parameter"),
    ({"n": "3"}, "n", "wrong type"),
    ({"n": 2.5}, "n", "wrong type"),
    ({"n": True}, "n", "wrong type"),
    ({"flag": 1}, "flag", "wrong type"),
    ({"items": 3}, "items", "wrong type"),
    ({"n": 0}, "n", "out of range"),
    ({"n": 11}, "n", "out of range"),
    ({"scale": 0.0}, "scale", "out of range"),
    ({"items": [1, 9]}, "items", "out of range"),
    ({"word": "hello"}, "word", "not a valid choice"),
    ({"size": 7}, "size", "not even"),
])
def test_validation_errors_name_the_parameter(book, given, name, problem):
    declared = params.declared(book.template("tiny"))
    with pytest.raises(params.ParameterError) as error:
        params.validate(declared, given, "tiny")
    message = str(error.value)
    assert f"'{name}'" in message and problem in message and "\n" not in message


def test_validation_fills_defaults_and_normalises_numbers(book):
    declared = params.declared(book.template("tiny"))
    resolved = params.validate(declared, {"scale": 2, "n": 4})
    assert resolved == {"n": 4, "word": "hi", "scale": 2.0, "flag": False, "items": [1, 2], "size": 8}
    assert isinstance(resolved["scale"], float)


def test_cli_values_are_read_by_declared_type(book):
    declared = params.declared(book.template("tiny"))
    assert params.from_cli(declared, "n", "4") == 4
    assert params.from_cli(declared, "scale", "1e-1") == 0.1  # YAML alone would keep "1e-1" a string
    assert params.from_cli(declared, "flag", "true") is True
    assert params.from_cli(declared, "items", "[1, 2, 3]") == [1, 2, 3]
    assert params.from_cli(declared, "word", "yes") == "yes"  # not YAML's True


@pytest.mark.parametrize("line, problem", [
    ("n = 3", "must describe it"),
    ("n = 3  # how many", "needs a range"),
    ("n = 30  # how many [1, 10]", "out of range"),
    ("n = 3  # how many with n >= 1 [1, 10]", "cannot read"),
    ("name = 'a'  # a name [1, 2]", "only for numbers"),
    ("xs = [1]  # numbers [1, 2]", "needs 'each in"),
    ("x = None  # nothing", "must be an int, float"),
])
def test_bad_declarations_are_rejected(tmp_path, line, problem):
    _template(tmp_path / "bad.ipynb", line + "\n", "pass")
    with pytest.raises(params.ParameterError, match=problem):
        params.declared(tmp_path / "bad.ipynb")


def test_every_chapter_template_declares_its_parameters():
    """Each parameter of each template: a description, and a range or choices for numbers."""
    layout = plan.default_layout()
    assert layout.templates(), "no chapter templates in chapters/"
    for chapter in layout.templates():
        declared = params.declared(layout.template(chapter))  # raises on a missing comment or range
        for p in declared.values():
            assert p.description, f"{chapter}: {p.name} has no description"
            assert p.element_type in ("str", "bool") or p.has_range, f"{chapter}: {p.name} has no range"
        nb = nbformat.read(layout.template(chapter), as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", chapter
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), f"{chapter}: outputs not stripped"


# --- execution, cache, post-processing, failures -------------------------------------


def test_cache_skips_same_inputs_and_reruns_on_any_change(book, monkeypatch):
    assert run_plan(book) == 1
    assert run_plan(book) == 0  # same template, parameters, version: cached
    assert run_plan(book, force=True) == 1

    write_plan(book.root, [{"chapter": "tiny", "output": "tiny-a.ipynb", "title": "Tiny A", "parameters": {"n": 3}}])
    assert run_plan(book) == 1  # parameters changed
    assert run_plan(book) == 0

    monkeypatch.setattr(ropelib, "__version__", "99.0")
    assert run_plan(book) == 1  # library version changed
    assert run_plan(book) == 0

    template = book.template("tiny")
    nb = nbformat.read(template, as_version=4)
    nb.cells[-1].source += "\n# an edit"
    nbformat.write(nb, template)
    assert run_plan(book) == 1  # template changed
    assert run_plan(book) == 0


def test_cache_key_depends_on_each_input(book):
    template = book.template("tiny")
    key = runner.cache_key(template, {"n": 1}, "1")
    assert key == runner.cache_key(template, {"n": 1}, "1")
    assert key != runner.cache_key(template, {"n": 2}, "1")
    assert key != runner.cache_key(template, {"n": 1}, "2")
    assert key != runner.cache_key(book.template("boom"), {"n": 1}, "1")


def test_cache_follows_checkpoints_and_read_files(book):
    """Retraining a checkpoint (its manifest changes) re-runs every page; a changed file
    in a run's ``reads`` re-runs that page only."""
    write_plan(book.root, [
        {"chapter": "tiny", "output": "plain.ipynb", "title": "Plain"},
        {"chapter": "tiny", "output": "summary.ipynb", "title": "Summary", "reads": ["data/results/glance-*.csv"]},
    ])
    manifest = book.root / "data" / "models" / "base" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"weights_sha256": "aa"}')
    results = book.root / "data" / "results"
    results.mkdir(parents=True)
    assert run_plan(book) == 2 and run_plan(book) == 0
    (results / "glance-one.csv").write_text("finding,verdict\nx,replicated\n")
    assert run_plan(book) == 1  # only the page that reads it
    (results / "other.csv").write_text("not read\n")
    assert run_plan(book) == 0
    manifest.write_text('{"weights_sha256": "bb"}')
    assert run_plan(book) == 2


def test_plan_rejects_reads_that_are_not_relative_globs(book):
    for reads in ("data/x.csv", ["/etc/passwd"], [""]):
        write_plan(book.root, [{"chapter": "tiny", "output": "a.ipynb", "title": "A", "reads": reads}])
        with pytest.raises(plan.PlanError, match="reads must be a list of glob patterns"):
            plan.load(book)


def test_executed_page_is_post_processed(book):
    run_plan(book)
    output = book.book / "tiny-a.ipynb"
    nb = nbformat.read(output, as_version=4)
    meta = nb.metadata["ropebook"]
    assert meta["cache_key"] == runner.cache_key(book.template("tiny"), meta["parameters"])
    assert meta["parameters"]["n"] == 2 and meta["template"] == "chapters/tiny.ipynb"
    assert nb.cells[0].source.startswith("# Tiny A")  # the run's title
    table = nb.cells[1]
    assert table.cell_type == "markdown" and "| `n` | `2` | how many times to repeat the word |" in table.source
    assert "colab.research.google.com" in table.source and "mybinder.org" in table.source
    hidden = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert {t for c in hidden for t in c.metadata["tags"]} >= {"parameters", "injected-parameters"}
    assert nb.cells[-1].outputs[0]["text"] == "hihi 3.0 False 3 8\n"
    timings = json.loads(book.timings.read_text())
    assert timings["book/tiny-a.ipynb"]["seconds"] > 0
    assert set(timings["book/tiny-a.ipynb"]) == {"seconds", "ran_at", "cache_key", "ropelib", "fp32_matmul_gflops_2_threads"}
    assert timings["book/tiny-a.ipynb"]["fp32_matmul_gflops_2_threads"] > 1  # the yardstick beside the time
    assert not list(book.book.glob("*.tmp.ipynb"))


def test_failing_chapter_leaves_nothing_and_is_retried(book):
    write_plan(book.root, [{"chapter": "boom", "output": "boom.ipynb", "title": "Boom"}])
    for _ in range(2):  # the second run executes again: nothing was cached
        with pytest.raises(runner.RunFailed) as error:
            run_plan(book)
        message = str(error.value)
        assert "cell 2" in message and "ValueError: boom on purpose" in message and "\n" not in message
        assert not (book.book / "boom.ipynb").exists()
        assert not list(book.book.glob("*.tmp.ipynb")) and not list(book.book.glob(".*.tmp.ipynb"))
    write_plan(book.root, [{"chapter": "boom", "output": "boom.ipynb", "title": "Boom", "parameters": {"fail": False}}])
    assert run_plan(book) == 1 and (book.book / "boom.ipynb").exists()


# --- the command line --------------------------------------------------------------


def test_cli_bad_value_fails_before_anything_is_written(book, capsys):
    status = cli.main(["--root", str(book.root), "run", "tiny", "-p", "n", "0"])
    err = capsys.readouterr().err
    assert status == 2 and "'n'" in err and err.count("\n") == 1
    assert sorted(p.name for p in book.book.iterdir()) == ["runs.yml"]


def test_cli_one_off_run_writes_a_new_orphan_page(book, capsys):
    status = cli.main(["--root", str(book.root), "run", "tiny", "-p", "n", "4", "-p", "word", "yo"])
    assert status == 0
    pages = [p for p in book.book.glob("tiny-*.ipynb") if p.name != "tiny-a.ipynb"]
    assert len(pages) == 1 and not (book.book / "tiny-a.ipynb").exists()
    nb = nbformat.read(pages[0], as_version=4)
    assert nb.metadata["orphan"] is True and nb.metadata["ropebook"]["parameters"]["word"] == "yo"
    assert not book.timings.exists()  # the performance record is of the plan's pages only
    assert "[1/1]" in capsys.readouterr().out


def test_cli_refuses_to_overwrite_a_published_page(book, capsys):
    published = book.book / "tiny-a.ipynb"
    status = cli.main(["--root", str(book.root), "run", "tiny", "-p", "n", "4", "-o", str(published)])
    assert status == 2 and "published page" in capsys.readouterr().err and not published.exists()


def test_sigterm_stops_a_page_like_ctrl_c_and_leaves_nothing_half_written(tmp_path):
    # a session's end or `kill PID` sends SIGTERM: the page being executed must not leave .<page>.tmp.ipynb
    (tmp_path / "chapters").mkdir()
    (tmp_path / "book").mkdir()
    _template(tmp_path / "chapters" / "slow.ipynb", "seconds = 60  # how long to sleep [1, 60]\n",
              'import time\nprint("sleeping", flush=True)\ntime.sleep(seconds)')
    write_plan(tmp_path, [{"chapter": "slow", "output": "slow.ipynb", "title": "Slow"}])
    page = subprocess.Popen([sys.executable, "-m", "ropelib", "--root", str(tmp_path), "run"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "book").glob(".*.tmp.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.2)  # papermill writes the temp page once the kernel has started
    assert list((tmp_path / "book").glob(".*.tmp.ipynb")), "the page never started"
    page.terminate()
    _, err = page.communicate(timeout=60)
    assert page.returncode == cli.INTERRUPTED and "nothing half-written" in err, err
    assert sorted(p.name for p in (tmp_path / "book").iterdir()) == ["runs.yml"]


def test_bad_parameter_fails_fast_in_a_fresh_process():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ropelib", "run", "rope-rescaling", "-p", "factor", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'factor'" in result.stderr, result.stderr
    assert elapsed < 5, f"bad input took {elapsed:.1f} s to report"


# --- constraints across parameters (``# requires:`` lines of the parameters cell) -----------


REQUIRES = TINY_PARAMETERS + "# requires: n <= size // 2 or flag: n may not exceed half the size unless flag is set\n"


def test_a_requirement_across_parameters_is_checked_with_the_values(tmp_path):
    _template(tmp_path / "req.ipynb", REQUIRES, "pass")
    declared = params.declared(tmp_path / "req.ipynb")
    assert [r.expression for r in declared.requires] == ["n <= size // 2 or flag"]
    assert params.validate(declared, {"n": 4, "size": 8})["n"] == 4  # each value in range, and together fine
    assert params.validate(declared, {"n": 9, "size": 8, "flag": True})["n"] == 9
    with pytest.raises(params.ParameterError, match=r"n may not exceed half the size unless flag is set \(flag=False, "
                                                    r"n=5, size=8; requires n <= size // 2 or flag\)"):
        params.validate(declared, {"n": 5, "size": 8})  # each value passes its own range: only together they fail


@pytest.mark.parametrize("line, problem", [
    ("# requires: n <= m: m is unknown", "'m' is no parameter"),
    ("# requires: __import__('os'): no", "only len, min, max, abs may be called"),
    ("# requires: n.real > 0: attributes", "Attribute is not allowed"),
    ("# requires: n <=: broken", "is not an expression"),
    ("# requires n > 0", "cannot read"),
])
def test_bad_requirements_are_rejected_when_the_template_is_read(tmp_path, line, problem):
    _template(tmp_path / "bad.ipynb", TINY_PARAMETERS + line + "\n", "pass")
    with pytest.raises(params.ParameterError, match=problem):
        params.declared(tmp_path / "bad.ipynb")


def test_attention_patterns_refuses_too_many_queries_for_the_length_before_a_kernel_starts():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ropelib", "run", "attention-patterns", "-p", "length", "8"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "n_queries needs that many positions in the last quarter" in result.stderr
    assert "length=8, n_queries=16" in result.stderr
    assert time.perf_counter() - start < 5
    declared = params.declared(ROOT / "chapters" / "attention-patterns.ipynb")
    assert params.validate(declared, {"length": 64})["n_queries"] == 16  # 64 // 4 = 16 positions: enough
    assert params.validate(declared, {"length": 0})["length"] == 0  # 4 x L0, resolved in the kernel
