"""benchmarks/needle_trials.py: every design timed in one run, and the shared prefix equals the full pass
(issue 35: within 1e-5, the same answers). No timing assertions; bad input is one line and exit 2."""

import json
import subprocess
import sys

from ropelib.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "needle_trials.py"


def test_a_run_times_every_design_and_checks_the_shared_prefix(tmp_path):
    out = tmp_path / "needle-trials.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--length", "256", "--needles", "2", "--depths", "20", "80",
                           "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())["random organism@256"]
    assert report["trials"] == 4 and report["fp32_matmul_gflops"] > 0
    assert set(report["seconds_per_trial"]) == {"two_passes", "one_prefill", "shared_full", "shared_prefix"}
    assert report["ratio_to_two_passes"]["two_passes"] == 1.0
    check = report["shared_prefix_vs_full_pass"]
    assert check["max_abs_difference"] <= 1e-5 and check["same_answers"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--needles", "1", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--needles" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_designs_choose_what_is_timed_and_the_check_always_runs(tmp_path):
    out = tmp_path / "needle-trials.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--length", "128", "--needles", "2", "--depths", "50",
                           "--threads", "1", "--designs", "shared_prefix", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())["random organism@128"]
    assert set(report["seconds_per_trial"]) == {"shared_full", "shared_prefix"}  # the check's two, no others
    assert "ratio_to_two_passes" not in report and report["ratio_to_shared_full"]["shared_full"] == 1.0
    assert report["shared_prefix_vs_full_pass"]["same_answers"]


def test_dynamic_ntk_past_l0_shares_its_prefix_and_equals_the_full_pass(tmp_path):
    # its base depends on the length: the prefix is rotated as one pass, the teacher rows from a second prefix
    out = tmp_path / "needle-trials.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--method", "dynamic_ntk", "--factor", "2", "--length", "384",
                           "--needles", "2", "--depths", "50", "--threads", "1", "--designs", "shared_prefix",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())["random organism dynamic_ntk x2@384"]
    assert report["method"] == "dynamic_ntk" and report["factor"] == 2.0
    check = report["shared_prefix_vs_full_pass"]
    assert check["max_abs_difference"] <= 1e-5 and check["same_answers"]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--method", "dynamic", "--out", str(tmp_path / "x.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--method" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
