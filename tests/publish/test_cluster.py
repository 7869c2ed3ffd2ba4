"""``ropebook run --scheduler``: the run plan on a real Dask LocalCluster, guarantees intact.

One LocalCluster of 2 worker processes (one thread each) serves the module; the pages are
tiny throwaway templates (a kernel start and a print, no torch), as in test_runner.
"""

import json
import os
import shutil
import sys
import time

import distributed
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ropelib.publish import cli, cluster, plan, runner
from ropelib.paths import ROOT

TEMPLATES = {
    "echo": ('n = 2  # how many times to say hi [1, 10]\n', 'print("hi" * n)'),
    "where": ('note = "x"  # anything\n', "import os\nprint(os.getppid())  # the worker process that runs the kernel"),
    "sleep": ('seconds = 30  # how long to sleep [0, 60]\n', "import time\ntime.sleep(seconds)"),
    "wire": ('note = "x"  # anything\n',
             "from ipykernel import get_connection_info\n"
             "info = get_connection_info(unpack=True)\n"
             "print(info['transport'], info['ip'])"),
    "boom": ('fail = True  # raise on purpose\n', 'x = 1\nif fail:\n    raise ValueError("boom on purpose")'),
    "crash": ('marker = "crash.marker"  # file that says the worker was already killed once\n',
              "import os, pathlib, signal\n"
              "if not pathlib.Path(marker).exists():\n"
              "    pathlib.Path(marker).write_text('killed')\n"
              "    os.kill(os.getppid(), signal.SIGKILL)  # the worker dies mid-page\n"
              "    os._exit(1)\n"
              "print('survived')"),
}


def _book(root, entries, like=None):
    """A throwaway book at ``root`` with TEMPLATES (the very files of book ``like``) and ``entries`` as its plan."""
    (root / "book").mkdir(parents=True)
    if like is not None:  # cell ids are random: same template bytes, same cache keys
        shutil.copytree(like.chapters, root / "chapters")
        _plan(root, entries)
        return plan.Layout(root)
    (root / "chapters").mkdir()
    for name, (parameters, body) in TEMPLATES.items():
        nb = new_notebook(
            cells=[new_markdown_cell(f"# {name}"), new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                   new_code_cell(body)],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, root / "chapters" / f"{name}.ipynb")
    _plan(root, entries)
    return plan.Layout(root)


def _plan(root, entries):
    (root / "book" / "runs.yml").write_text(json.dumps(entries))  # JSON is YAML


def _jobs(layout):
    runs = plan.load(layout)
    resolved = plan.check(runs, layout)
    return [runner.Job(r.chapter, resolved[r.output], layout.book / r.output, r.title, reads=r.reads) for r in runs]


def _page(chapter, output, **parameters):
    return {"chapter": chapter, "output": output, "title": output, "parameters": parameters}


def _cells(path):
    """A page's cells without volatile metadata: (type, source, outputs' text)."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, [o.get("text") or o.get("data", {}).get("text/plain") for o in c.get("outputs", [])])
            for c in nb.cells], {k: nb.metadata.get(k) for k in ("ropebook", "orphan")}


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as dask:
        yield dask


@pytest.fixture
def submitted(monkeypatch):
    """The keyword arguments of every Client.submit call (the pages really sent)."""
    calls = []
    original = distributed.Client.submit

    def spy(self, function, *args, **kwargs):
        calls.append((args[0].output.name, kwargs))
        return original(self, function, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "submit", spy)
    return calls


def _run(layout, scheduler, lines=None, **options):
    echo = (lambda text, **_: lines.append(text)) if lines is not None else (lambda *a, **k: None)
    return cluster.execute_distributed(_jobs(layout), layout, scheduler, echo=echo, **options)


def test_pages_run_on_workers_like_the_sequential_runner(tmp_path, local_cluster, submitted):
    entries = [_page("echo", "echo-2.ipynb", n=2), _page("echo", "echo-3.ipynb", n=3), _page("where", "where.ipynb")]
    book = _book(tmp_path / "distributed", entries)
    sequential = _book(tmp_path / "sequential", entries[:2], like=book)
    lines = []
    assert _run(book, local_cluster.scheduler_address, lines) == 3
    runner.execute_all(_jobs(sequential), sequential, echo=lambda *a, **k: None)

    worker_pids = set(distributed.Client(local_cluster).run(os.getpid).values())
    ran_in = int(nbformat.read(book.book / "where.ipynb", as_version=4).cells[-1].outputs[0]["text"])
    assert ran_in in worker_pids and ran_in != os.getpid()
    for name in ("echo-2.ipynb", "echo-3.ipynb"):
        assert _cells(book.book / name) == _cells(sequential.book / name)
    timings, expected = json.loads(book.timings.read_text()), json.loads(sequential.timings.read_text())
    assert sorted(timings) == ["book/echo-2.ipynb", "book/echo-3.ipynb", "book/where.ipynb"]
    assert all(set(timings[name]) == set(expected["book/echo-2.ipynb"]) and timings[name]["seconds"] > 0
               for name in timings)
    assert sum("done in" in line for line in lines) == 3 and lines[-1].startswith("3 of 3 executed")
    assert not list(book.book.glob(".*.tmp.ipynb"))

    submitted.clear()
    entries[1]["parameters"]["n"] = 4
    _plan(book.root, entries)
    assert _run(book, local_cluster.scheduler_address) == 1
    assert [name for name, _ in submitted] == ["echo-3.ipynb"]  # cached pages are never sent
    assert "hihihihi" in _cells(book.book / "echo-3.ipynb")[0][-1][2][0]


def test_pages_started_at_once_talk_over_sockets_of_their_own(tmp_path, local_cluster):
    """Two kernels starting at once over TCP can pick the same free port and one dies; sockets cannot."""
    book = _book(tmp_path, [_page("wire", "wire-a.ipynb", note="a"), _page("wire", "wire-b.ipynb", note="b")])
    assert _run(book, local_cluster.scheduler_address) == 2
    wires = [_cells(book.book / f"wire-{x}.ipynb")[0][-1][2][0].split() for x in "ab"]
    assert [transport for transport, _ in wires] == ["ipc", "ipc"] and wires[0][1] != wires[1][1]
    assert not any(os.path.exists(os.path.dirname(path)) for _, path in wires)  # removed with the page


def test_failing_page_leaves_no_output_and_the_others_complete(tmp_path, local_cluster):
    book = _book(tmp_path, [_page("boom", "boom.ipynb"), _page("echo", "echo.ipynb")])
    lines = []
    with pytest.raises(runner.RunFailed) as error:
        _run(book, local_cluster.scheduler_address, lines)
    message = str(error.value)
    assert "book/boom.ipynb: cell 2 (`x = 1`): ValueError: boom on purpose" in message and "\n" not in message
    assert not (book.book / "boom.ipynb").exists() and (book.book / "echo.ipynb").exists()
    assert not list(book.book.glob(".*.tmp.ipynb"))
    assert list(json.loads(book.timings.read_text())) == ["book/echo.ipynb"]
    assert lines[-1].startswith("1 of 2 executed, 0 cached, 1 failed")


def test_page_waits_for_the_pages_whose_files_it_reads(tmp_path):
    jobs = [runner.Job("echo", {}, tmp_path / f"{name}.ipynb", reads=reads)
            for name, reads in [("a", ()), ("b", ()), ("summary", ("data/*.csv",)), ("c", ())]]
    assert [[job.output.stem for job in stage] for stage in cluster._stages(jobs)] == [["a", "b"], ["summary", "c"]]


def test_resources_are_validated_and_sent_with_each_page(tmp_path, submitted):
    book = _book(tmp_path, [{**_page("echo", "gpu.ipynb"), "resources": {"GPU": 1}}, _page("echo", "cpu.ipynb")])
    runs = plan.load(book)
    assert [r.resources for r in runs] == [{"GPU": 1}, {}]
    needs = cluster.plan_resources(_jobs(book), runs, book)
    assert needs == {book.book / "gpu.ipynb": {"GPU": 1}, book.book / "cpu.ipynb": {}}
    one_off = runner.Job("echo", {}, tmp_path / "one-off.ipynb", orphan=True)
    assert cluster.plan_resources([one_off], runs, book)[one_off.output] == {"GPU": 1}  # its chapter's first entry

    for bad in ({"GPU": 0}, {"GPU": "one"}, {"GPU": True}, [1]):
        _plan(book.root, [{**_page("echo", "gpu.ipynb"), "resources": bad}])
        with pytest.raises(plan.PlanError, match="resources must be a mapping") as error:
            plan.load(book)
        assert "\n" not in str(error.value)

    notes = []
    ignored = cluster._placeable(needs, {}, 2, book, lambda text, **_: notes.append(text))
    assert ignored == {output: {} for output in needs} and "ignoring the pages' GPU" in notes[0]
    assert cluster._placeable(needs, {}, None, book, print) == needs  # tcp:// and slurm workers declare their own
    with pytest.raises(cluster.ClusterError, match="needs {'GPU': 1}"):
        cluster.execute_distributed([runner.Job("echo", {}, book.book / "gpu.ipynb")], book, "local:1",
                                    worker_resources="CPU=1", resources={book.book / "gpu.ipynb": {"GPU": 1}})
    assert not submitted  # refused before any cluster starts


def test_cli_runs_the_plan_on_a_local_cluster_with_worker_resources(tmp_path, capsys, submitted):
    book = _book(tmp_path, [{**_page("echo", "gpu.ipynb", n=3), "resources": {"GPU": 1}}, _page("echo", "cpu.ipynb")])
    status = cli.main(["--root", str(book.root), "run", "--scheduler", "local:2", "--worker-resources", "GPU=1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "dashboard:" in out and "2 of 2 executed" in out
    assert sorted((name, kwargs["resources"]) for name, kwargs in submitted) == [
        ("cpu.ipynb", None), ("gpu.ipynb", {"GPU": 1})]
    assert (book.book / "gpu.ipynb").exists() and (book.book / "cpu.ipynb").exists()


def test_cli_one_off_run_takes_the_scheduler(tmp_path, local_cluster, capsys):
    book = _book(tmp_path, [_page("echo", "echo.ipynb")])
    status = cli.main(["--root", str(book.root), "run", "echo", "-p", "n", "4",
                       "--scheduler", local_cluster.scheduler_address])
    assert status == 0, capsys.readouterr()
    pages = list(book.book.glob("echo-*.ipynb"))
    assert len(pages) == 1 and nbformat.read(pages[0], as_version=4).metadata["orphan"] is True
    assert not book.timings.exists()  # one-off pages are not in the performance record


@pytest.mark.parametrize("options, message", [
    (["--scheduler", "locall"], "expected local, local:N, tcp://HOST:PORT or slurm"),
    (["--scheduler", "local:0"], "expected local, local:N"),
    (["--scheduler", "local", "--cluster-config", "x.yml"], "--cluster-config is for --scheduler slurm"),
    (["--scheduler", "tcp://h:1", "--worker-resources", "GPU=1"], "--worker-resources is for --scheduler local"),
    (["--scheduler", "local", "--worker-resources", "GPU=0"], "positive amounts"),
    (["--worker-resources", "GPU=1"], "need --scheduler"),
    (["--scheduler", "slurm", "--cluster-config", "missing.yml"], "--cluster-config missing.yml"),
])
def test_bad_cluster_options_fail_in_one_line_before_anything_runs(tmp_path, capsys, options, message):
    book = _book(tmp_path, [_page("echo", "echo.ipynb")])
    status = cli.main(["--root", str(book.root), "run", *options])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (book.book / "echo.ipynb").exists()


def test_slurm_without_dask_jobqueue_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    book = _book(tmp_path, [_page("echo", "echo.ipynb")])
    with pytest.raises(cluster.ClusterError, match=r"dask-jobqueue, the 'cluster' extra: pip install -e '\.\[cluster\]'"):
        _run(book, "slurm", cluster_config=ROOT / "cluster-slurm.example.yml")


def test_ctrl_c_cancels_closes_the_cluster_and_leaves_nothing_half_written(tmp_path):
    # the sleeping page sleeps the longest its parameter allows: a kernel that must restart (jupyter_client's
    # port race between two kernels started at once) can delay the echo page by tens of seconds
    book = _book(tmp_path, [_page("echo", "echo.ipynb"), _page("sleep", "sleep.ipynb", seconds=60)])

    def interrupt_after_first_page(text, **_):
        if "done in" in text and "echo.ipynb" in text:
            raise KeyboardInterrupt  # as Ctrl-C would, while sleep.ipynb is running

    start = time.perf_counter()
    with pytest.raises(runner.Interrupted, match="1 page\\(s\\) done, 1 left"):
        cluster.execute_distributed(_jobs(book), book, "local:2", echo=interrupt_after_first_page)
    assert time.perf_counter() - start < 55  # the sleeping page was not waited for
    assert (book.book / "echo.ipynb").exists() and not (book.book / "sleep.ipynb").exists()
    assert not list(book.book.glob(".*.tmp.ipynb"))


def test_worker_killed_mid_page_is_retried(tmp_path, local_cluster):
    """Last: it kills one of the module cluster's workers (its nanny starts a new one)."""
    book = _book(tmp_path, [_page("crash", "crash.ipynb")])
    lines = []
    assert _run(book, local_cluster.scheduler_address, lines) == 1
    assert (book.root / "crash.marker").exists()  # the first attempt did kill its worker
    nb = nbformat.read(book.book / "crash.ipynb", as_version=4)
    assert nb.cells[-1].outputs[0]["text"] == "survived\n"
    assert not list(book.book.glob(".*.tmp.ipynb"))
    assert list(json.loads(book.timings.read_text())) == ["book/crash.ipynb"]
