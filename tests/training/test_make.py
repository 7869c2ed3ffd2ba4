"""make_models' schedule: parents first, at most ``jobs`` at once, the longest chain started first.
``simulate`` replays the order ``train_all`` uses (same ``startable`` rule), on given durations."""

import pytest

from ropelib.training import make as make_models
from ropelib.training.recipes import SPECS


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_every_child_starts_after_its_parent_and_at_most_jobs_run_at_once(jobs):
    durations = {name: 10.0 + 7 * i for i, name in enumerate(SPECS)}
    times = make_models.simulate(durations, jobs=jobs)
    assert set(times) == set(SPECS)
    for name, (start, finish) in times.items():
        assert finish - start == pytest.approx(durations[name])
        parent = SPECS[name].parent
        if parent:
            assert start >= times[parent][1]
    for moment in sorted({start for start, _ in times.values()}):
        assert sum(start <= moment < finish for start, finish in times.values()) <= jobs


def test_one_job_runs_everything_back_to_back():
    durations = {name: 5.0 for name in SPECS}
    times = make_models.simulate(durations, jobs=1)
    assert max(finish for _, finish in times.values()) == pytest.approx(5.0 * len(SPECS))


def test_the_longest_estimated_chain_starts_first_and_a_parent_outside_the_run_is_on_disk():
    order = make_models.priority_order(SPECS)
    assert order[0] == "base-L"  # base-L -> cpt-pi-L costs the most (size L trains the base recipe)
    times = make_models.simulate({"cpt-pi": 3.0, "cpt-yarn": 4.0}, jobs=2)  # base not retrained here
    assert times["cpt-pi"][0] == times["cpt-yarn"][0] == 0.0


def test_startable_waits_for_a_parent_being_trained_and_for_a_free_process():
    names = ["base", "cpt-pi", "base-S"]
    assert make_models.startable(["cpt-pi", "base", "base-S"], names, finished=set(), running=0, jobs=2) == ["base", "base-S"]
    assert make_models.startable(["cpt-pi"], names, finished={"base"}, running=1, jobs=2) == ["cpt-pi"]
    assert make_models.startable(["cpt-pi", "base-S"], names, finished={"base"}, running=2, jobs=2) == []
