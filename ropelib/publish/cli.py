"""``ropebook``: the command line of the book (also ``python -m ropelib``).

    ropebook run                         execute every entry of book/runs.yml (cached)
    ropebook run CHAPTER -p NAME VALUE   one-off page: book/CHAPTER-<hash>.ipynb (or -o PATH)
    ropebook run ... --force             execute even when the cache says it is current
    ropebook build [--all]               jupyter-book build, warnings are errors
    ropebook toc [--check]               write (or check) _toc.yml from the run plan
    ropebook check                       validate plan, TOC and every template's parameters
    ropebook models                      train the model organisms (ropelib.training.curriculum)

Bad input (unknown chapter or parameter, wrong type, out of range) is reported in one
line and exits with status 2 before anything is executed or written; a chapter that
fails while executing exits with status 1. Ctrl-C and SIGTERM (``kill``, a session's end)
stop alike: the page being executed leaves nothing half-written, exit status 130. Heavy
modules (papermill, torch via the chapters) are imported only once input is valid, so bad
input fails in about a second.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ropelib.publish import params as _params
from ropelib.publish import plan as _plan
from ropelib.publish import runner
from ropelib.models import sources

BAD_INPUT, FAILED, INTERRUPTED = 2, 1, 130


def _stop(signum, frame):
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so the runner's clean-up (temp page, kernel) runs


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    layout = _plan.Layout(Path(args.root).resolve()) if args.root else _plan.default_layout()
    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, _stop) if in_main_thread else None
    try:
        return args.command(args, layout) or 0
    except (_params.ParameterError, _plan.PlanError, sources.SourceError) as error:
        print(f"ropebook: error: {error}", file=sys.stderr)
        return BAD_INPUT
    except runner.RunFailed as error:
        print(f"ropebook: failed: {error}", file=sys.stderr)
        return FAILED
    except runner.Interrupted as stopped:
        print(f"ropebook: {stopped}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print("ropebook: interrupted; nothing half-written", file=sys.stderr)
        return INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ropebook", description="Run and build the ropebook.")
    parser.add_argument("--root", help=argparse.SUPPRESS)  # tests point it at a throwaway book
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="execute the run plan, or one chapter with -p parameters")
    run.add_argument("chapter", nargs="?", help="template name in chapters/ (omit to run the whole plan)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a parameter (VALUE is read as YAML: 4096, 1e6, true, [128, 256])")
    run.add_argument("-o", "--output", help="where to write the one-off notebook (default book/CHAPTER-<hash>.ipynb)")
    run.add_argument("--force", action="store_true", help="execute even when the cached output is current")
    run.add_argument("--pages", metavar="GLOB",
                     help="only the plan's pages whose output name matches, e.g. '<model>-*' (a real model's part); "
                          "comma-separated globs, !GLOB leaves pages out: '!<model>-*' leaves its pages out")
    run.add_argument("--scheduler", metavar="SCHEDULER",
                     help="run the pages as Dask tasks: local[:N] (N worker processes, default 2), "
                          "tcp://HOST:PORT (an existing scheduler) or slurm (see ropelib/publish/cluster.py)")
    run.add_argument("--cluster-config", metavar="PATH", help="YAML of SLURMCluster arguments for --scheduler slurm")
    run.add_argument("--worker-resources", metavar="NAME=N[,...]",
                     help="what each local worker offers, e.g. GPU=1 (pages' runs.yml resources are then enforced)")
    run.set_defaults(command=_run)

    build = commands.add_parser("build", help="build the HTML book with jupyter-book (warnings are errors)")
    build.add_argument("--all", action="store_true", help="rebuild every page, not only changed ones")
    build.set_defaults(command=_build)

    toc = commands.add_parser("toc", help="write _toc.yml from book/runs.yml")
    toc.add_argument("--check", action="store_true", help="only check that _toc.yml is current")
    toc.set_defaults(command=_toc)

    check = commands.add_parser("check", help="validate the run plan, the TOC and every template's parameters")
    check.set_defaults(command=_check)

    models = commands.add_parser("models", help="retrain the model organisms (ropelib.training.make.train_all)")
    models.add_argument("names", nargs="*", help="checkpoints to train (default: all, parents first)")
    models.add_argument("--jobs", type=int, default=2, help="training processes at a time (each uses 1 thread)")
    models.add_argument("--smoke", type=float, default=1.0, metavar="SCALE",
                        help="multiply every stage's steps by SCALE (< 1: a quick pipeline check, no gate)")
    models.set_defaults(command=_models)
    return parser


def _selected(output: str, pages: str) -> bool:
    """Does ``output`` match the ``--pages`` globs: any plain one (all when there is none) and no !one?"""
    globs = [g.strip() for g in pages.split(",") if g.strip()]
    wanted = [g for g in globs if not g.startswith("!")]
    unwanted = [g[1:] for g in globs if g.startswith("!")]
    return (not wanted or any(fnmatch.fnmatch(output, g) for g in wanted)) and \
        not any(fnmatch.fnmatch(output, g) for g in unwanted)


def _run(args, layout: _plan.Layout) -> int:
    runs = _plan.load(layout)
    if args.chapter is None:
        if args.parameter or args.output:
            raise _plan.PlanError("-p and -o need a CHAPTER: ropebook run CHAPTER -p NAME VALUE")
        resolved = _plan.check(runs, layout)
        if _plan.write_toc(runs, layout):
            print(f"updated {layout.toc.name} from the run plan")
        if args.pages:
            runs = [r for r in runs if _selected(r.output, args.pages)]
            if not runs:
                raise _plan.PlanError(f"--pages {args.pages}: no page of the run plan (book/runs.yml) matches")
        for r in runs:
            sources.check_parameters(resolved[r.output], r.output)
        jobs = [runner.Job(r.chapter, resolved[r.output], layout.book / r.output, r.title, reads=r.reads,
                           results=layout.root / "data" / "results") for r in runs]
        # reading order is the TOC's; pages that read other pages' tables (the glance page,
        # second in the book) execute after every other page
        jobs.sort(key=lambda job: bool(job.reads))
    else:
        if args.pages:
            raise _plan.PlanError("--pages selects pages of the run plan; it takes no CHAPTER")
        jobs = [_one_off(args, runs, layout)]
    if args.scheduler or args.cluster_config or args.worker_resources:
        from ropelib.publish import cluster  # lazy: dask loads only for a distributed run

        cluster.execute_distributed(jobs, layout, args.scheduler, force=args.force, cluster_config=args.cluster_config,
                                    worker_resources=args.worker_resources,
                                    resources=cluster.plan_resources(jobs, runs, layout))
    else:
        runner.execute_all(jobs, layout, force=args.force)
    return 0


def _one_off(args, runs, layout):
    args.chapter = Path(args.chapter).stem  # accept chapters/NAME.ipynb as well as NAME
    template = layout.template(args.chapter)
    if not template.exists():
        known = ", ".join(layout.templates()) or "none"
        raise _plan.PlanError(f"unknown chapter {args.chapter!r}; templates in chapters/: {known}")
    declarations = _params.declared(template)
    given = {name: _params.from_cli(declarations, name, text, args.chapter) for name, text in args.parameter}
    parameters = _params.validate(declarations, given, args.chapter)
    sources.check_parameters(parameters, args.chapter)  # a bad model never reaches papermill
    if args.output:
        output = Path(args.output).resolve()
    else:
        digest = hashlib.sha256(runner.canonical(parameters).encode()).hexdigest()[:8]
        output = layout.book / f"{args.chapter}-{digest}.ipynb"
    published = {(layout.book / r.output).resolve() for r in runs}
    if output.resolve() in published:
        raise _plan.PlanError(f"{output.name} is a published page of the run plan; choose another -o")
    if output.suffix != ".ipynb" or output.name.endswith(".tmp.ipynb"):
        raise _plan.PlanError(f"-o {args.output}: must be a .ipynb path")
    shown = ", ".join(f"{n}={v}" for n, v in given.items()) or "defaults"
    title = f"{_template_title(template) or args.chapter} ({shown})"
    return runner.Job(args.chapter, parameters, output, title, orphan=True)


def _template_title(template: Path) -> str | None:
    import nbformat

    cells = nbformat.read(template, as_version=4).cells
    if cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# "):
        return cells[0].source.split("\n")[0][2:].strip()
    return None


def _toc(args, layout: _plan.Layout) -> int:
    runs = _plan.load(layout)
    if args.check:
        if not layout.toc.exists() or layout.toc.read_text() != _plan.toc(runs):
            raise _plan.PlanError(f"{layout.toc.name} is out of date with book/runs.yml; run `ropebook toc`")
        print(f"{layout.toc.name} is current")
    else:
        print(f"{'wrote' if _plan.write_toc(runs, layout) else 'unchanged'} {layout.toc}")
    return 0


def _check(args, layout: _plan.Layout) -> int:
    runs = _plan.load(layout)
    for chapter in layout.templates():
        _params.declared(layout.template(chapter))
    _plan.check(runs, layout)
    _toc(argparse.Namespace(check=True), layout)
    print(f"{len(runs)} runs, {len(layout.templates())} templates: parameters valid")
    return 0


def _build(args, layout: _plan.Layout) -> int:
    runs = _plan.load(layout)
    missing = [r.output for r in runs if not (layout.book / r.output).exists()]
    if missing:
        raise _plan.PlanError(f"book/{missing[0]} has not been executed yet; run `ropebook run` first")
    if _plan.write_toc(runs, layout):
        print(f"updated {layout.toc.name} from the run plan")
    executable = Path(sys.executable).with_name("jupyter-book")
    command = [str(executable) if executable.exists() else shutil.which("jupyter-book") or "jupyter-book"]
    # -W: warnings are errors; -n: nitpicky, missing references warn; --keep-going: list them all
    command += ["build", str(layout.root), "-W", "-n", "--keep-going"] + (["--all"] if args.all else [])
    if subprocess.run(command, cwd=layout.root).returncode != 0:
        raise runner.RunFailed("jupyter-book build reported errors or warnings (see above)")
    print(f"book: {layout.root / '_build' / 'html' / 'index.html'}")
    return 0


def _models(args, layout: _plan.Layout) -> int:
    from ropelib.training.make import train_all  # lazy: torch and the organism code load only here
    from ropelib.training.recipes import SPECS

    unknown = [name for name in args.names if name not in SPECS]
    if unknown:
        raise _params.ParameterError(f"unknown checkpoint(s) {', '.join(unknown)}; expected some of {', '.join(SPECS)}")
    if not (0 < args.smoke <= 1) or args.jobs < 1:
        raise _params.ParameterError("--smoke must be in (0, 1] and --jobs >= 1")
    train_all(args.names or None, jobs=args.jobs, scale=args.smoke)
    return 0
