"""The runner: parameters checked before any work, messages in full, run records, up-to-date skips, Ctrl-C."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from memlib.runner import registry, run, runstate

ROOT = run.NOTEBOOKS_DIR.parent


def test_parse_value_like_papermill_plus_lists_and_exponents():
    assert run.parse_value("3") == 3 and run.parse_value("0.5") == 0.5
    assert run.parse_value("true") is True and run.parse_value("True") is True
    assert run.parse_value("None") is None and run.parse_value("null") is None
    assert run.parse_value("[0, 1]") == [0, 1] and run.parse_value("mnist") == "mnist"
    assert run.parse_value("1e-3") == 0.001 and isinstance(run.parse_value("1e-3"), float)  # YAML 1.1 says str
    assert run.parse_value("-2E2") == -200.0 and run.parse_value("[1e-3, 0.5]") == [0.001, 0.5]
    assert run.parse_value("-5") == -5 and isinstance(run.parse_value("-5"), int)


@pytest.mark.parametrize("text", ["[0, 1", "{a: 1}"])
def test_unparseable_values_say_could_not_parse(text):
    with pytest.raises(run.Refused, match="could not parse -p seeds"):
        run.parse_value(text, "seeds")


def test_params_merge_profile_device_and_overrides():
    p = registry.study_params("randomization_tests", "smoke", "cpu", {"n_train": 150, "lr": run.parse_value("1e-3")})
    assert p["n_train"] == 150 and p["device"] == "cpu" and p["profile"] == "smoke" and p["lr"] == 0.001
    assert p["widths"] == [64]  # from profiles/smoke.yaml


# The bad-input table: every row is refused before any kernel starts, with a message naming what is wrong.
BAD_INPUTS = [
    (["randomization_tests", "-p", "n_trian", "10"], ["n_trian", "did you mean 'n_train'"]),
    (["randomization_tests", "-p", "n_train", "many"], ["could not parse -p n_train 'many'"]),
    (["randomization_tests", "-p", "seeds", "[0, 1"], ["could not parse -p seeds '[0, 1'"]),
    (["randomization_tests", "-p", "dataset", "svhn"], ["dataset='svhn'"]),
    (["randomization_tests", "-p", "n_train", "5000"], ["n_train=5000", "1,297", "digits"]),
    (["randomization_tests", "-p", "n_test", "600"], ["n_test=600", "500"]),
    (["randomization_tests", "-p", "model", "cnn1d"], ["model='cnn1d'", "sequence", "image", "digits"]),
    (["randomization_tests", "-p", "dataset", "mnist1d", "-p", "model", "alexnet_small"],
     ["model='alexnet_small'", "mnist1d", "'cnn1d'"]),
    (["randomization_tests", "-p", "noise_levels", "[0.5, 0.5, 0.8]"], ["noise_levels=(0.5, 0.5, 0.8)", "distinct"]),
    (["randomization_tests", "-p", "seeds", "[-1, 0]"], ["seeds=(-1, 0)", "non-negative"]),
    (["easiness", "-p", "seed", "-1"], ["seed=-1", "non-negative"]),
    (["randomization_tests", "-p", "profile", "smoke"], ["--profile smoke", "PROFILE=smoke"]),
    (["randomization_tests", "-p", "dataset", "mnist"], ["dataset 'mnist'", "MNIST/raw", "train-images-idx3-ubyte.gz",
                                                         "MEMLIB_DATA"]),
    (["randomizaton_tests"], ["unknown study", "did you mean 'randomization_tests'", "noise_vs_capacity"]),
]


@pytest.mark.parametrize("argv, words", BAD_INPUTS, ids=lambda a: " ".join(a) if isinstance(a[0], str) and
                         a[0].endswith("tests") or a[0] == "easiness" else "")
def test_bad_inputs_refused_before_any_work(argv, words, capsys, isolated_build, tmp_path, monkeypatch):
    data = tmp_path / "no-data-here"
    monkeypatch.setenv("MEMLIB_DATA", str(data))
    monkeypatch.setenv("MEMLIB_OFFLINE", "1")  # the missing-files row is the offline case (no download attempted)
    started = []  # no kernel, no training: the refusal comes before any notebook is executed
    monkeypatch.setattr(run, "execute", lambda *a, **k: started.append(a) or pytest.fail("a notebook was started"))
    assert run.main([*argv, "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert started == []
    assert not data.exists()  # a check that needs no data file creates no folder or lock in MEMLIB_DATA
    study = argv[0]
    if study in registry.studies():  # the refusal is recorded, so the report shows the study as failed, not as current
        record = runstate.read(study, "smoke")
        assert record["state"] == "refused" and record["error"]
        assert not (isolated_build / "build" / "smoke" / study / "metrics.json").exists()


def test_cuda_without_gpu_is_refused_before_work(capsys, isolated_build, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run.main(["randomization_tests", "--device", "cuda", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "device='cuda'" in err and "no CUDA GPU" in err and "DEVICE=cpu" in err


def test_an_unknown_device_name_is_refused_before_work(capsys, isolated_build):
    assert run.main(["randomization_tests", "--device", "tpu", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "device='tpu' is not allowed; use 'cpu', 'cuda', 'cuda:N' or 'auto'" in err
    assert not (isolated_build / "build" / "smoke" / "randomization_tests" / "metrics.json").exists()


def test_help_lists_each_parameter_with_its_comment(capsys):
    assert run.main(["randomization_tests", "--help"]) == 0
    out = capsys.readouterr().out
    assert "n_train" in out and "training examples" in out and "[smoke: 200]" in out
    assert "noise_levels" in out and "label-corruption probabilities" in out


def test_make_unknown_target_lists_the_studies():
    proc = subprocess.run(["make", "-s", "no-such-study"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "unknown target 'no-such-study'" in proc.stderr
    assert all(s in proc.stderr for s in registry.studies())


@pytest.mark.parametrize("args, jobs", [([], "-j2"), (["DEVICE=cuda"], "-j1"), (["JOBS=1"], "-j1"), (["JOBS=3"], "-j3"),
                                        (["-j3"], "")])
def test_make_all_runs_two_studies_at_once_on_a_cpu_unless_told(args, jobs):
    # -n prints the recipe, with the sub-make that runs the studies
    proc = subprocess.run(["make", "-n", *args, "all"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    found = re.search(r"--no-print-directory -k +(\S*) *studies", proc.stdout)
    assert found, proc.stdout
    assert found.group(1) == jobs  # make's own -jN (here -j3) is left to its jobserver


def test_start_order_is_longest_first_by_the_last_times_else_the_measured_list(monkeypatch):
    names = registry.studies()
    assert sorted(registry.LONGEST_FIRST) == sorted(names)  # no typo, no study left out
    times = {s: float(i) for i, s in enumerate(names)}  # the last notebook took longest
    assert registry.start_order("real", times) == names[::-1]
    del times[names[0]]  # one study without a time: the measured list decides
    assert registry.start_order("real", times) == list(registry.LONGEST_FIRST)
    monkeypatch.setattr(registry, "studies", lambda: [*names, "new_study"])
    assert registry.start_order("real", {})[0] == "new_study"  # unknown cost: started first


def test_make_starts_the_studies_in_the_runners_order(tmp_path):
    env = {**os.environ, "MEMLIB_BUILD": str(tmp_path)}
    order = subprocess.run([sys.executable, "-m", "memlib.runner", "--order", "--profile", "smoke"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60).stdout.split()
    # -n runs the recipe's sub-make (it names $(MAKE)) with -n: it prints the studies it would start, in order
    proc = subprocess.run(["make", "-n", "all", "PROFILE=smoke"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    started = [s for s in re.findall(r"memlib\.runner (\w+) --profile smoke", proc.stdout) if s != "scoreboard"]
    assert started == order == list(registry.LONGEST_FIRST)  # no build yet: the measured list


def test_makefile_passes_the_wait_policy_and_lab_settings():
    text = (ROOT / "Makefile").read_text()
    assert "export OMP_WAIT_POLICY ?= PASSIVE" in text
    assert "/lab\"" in text and "--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs" in text


def test_kernelspec_starts_kernels_with_passive_openmp_threads():
    from jupyter_client.kernelspec import KernelSpecManager

    run.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(run.KERNEL)
    assert spec.env.get("OMP_WAIT_POLICY") == "PASSIVE"


def test_notebooks_are_discovered_in_order():
    names = list(registry.notebooks())
    assert names[0] == "scoreboard" and "randomization_tests" in names
    assert "scoreboard" not in registry.studies()


# ----------------------------------------------------------------------------- fake studies through the runner

def fake_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A fake study\nWith a formula $x^2$."),
                nbformat.v4.new_code_cell("profile = 'x'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "memlib", "display_name": "memlib", "language": "python"}
    nbformat.write(nb, path)
    return path


WRITES_METRICS = """
import json, os
from memlib.runner.runstate import study_folder
out = study_folder('boom', profile)
out.mkdir(parents=True, exist_ok=True)
print('OMP_WAIT_POLICY', os.environ.get('OMP_WAIT_POLICY'))
(out / 'metrics.json').write_text(json.dumps({'study': 'boom', 'profile': profile, 'config': {}, 'claims': [],
    'wall_time_s': 0.1, 'device': 'cpu', 'versions': {}, 'git_commit': None, 'figures': []}))
"""


@pytest.fixture
def fake_study(tmp_path, monkeypatch, isolated_build):
    """Make the runner see one study, 'boom', whose notebook the test writes, plus the real scoreboard."""
    path = tmp_path / "01_boom.ipynb"
    real = registry.notebooks()
    monkeypatch.setattr(registry, "notebooks", lambda: {"boom": path, "scoreboard": real["scoreboard"]})
    monkeypatch.setattr(registry, "study_params",
                        lambda s, profile, device, overrides: {"profile": profile, **overrides})
    monkeypatch.setattr(run, "preflight", lambda s, params, here=True: None)
    return path


def test_failing_study_prints_the_whole_message_and_leaves_nothing_that_looks_current(fake_study, capfd,
                                                                                      isolated_build):
    message = ("dataset 'mnist' is not available offline.\\nPut these files in /x/MNIST/raw/ :\\n  a.gz\\n"
               "(MEMLIB_DATA=/x)")
    fake_notebook(fake_study, f"raise FileNotFoundError({message!r})")
    folder = isolated_build / "build" / "smoke" / "boom"
    folder.mkdir(parents=True)
    for name in ("metrics.json", "old_figure.png", "arrays.npz"):  # an earlier, complete-looking result
        (folder / name).write_text("{}")
    code = run.main(["boom", "--profile", "smoke"])
    out, err = capfd.readouterr()
    assert code == 1
    for line in ("FileNotFoundError: dataset 'mnist' is not available offline.", "Put these files in /x/MNIST/raw/ :",
                 "  a.gz", "(MEMLIB_DATA=/x)", str(folder / "boom.ipynb")):
        assert line in err, err
    assert "without encryption" not in out + err  # the kernel talks over Unix sockets
    assert sorted(p.name for p in folder.iterdir()) == ["boom.html", "boom.ipynb", "run.json"]
    record = runstate.read("boom", "smoke")
    assert record["state"] == "failed" and record["error"].startswith("FileNotFoundError: dataset 'mnist'")
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in folder.iterdir())


def test_up_to_date_study_is_skipped_until_something_changes(fake_study, capsys, isolated_build):
    fake_notebook(fake_study, WRITES_METRICS)
    assert run.main(["boom", "--profile", "smoke"]) == 0
    first = capsys.readouterr().out
    assert "boom: ok" in first
    executed = json.loads((isolated_build / "build" / "smoke" / "boom" / "boom.ipynb").read_text())
    assert "OMP_WAIT_POLICY PASSIVE" in json.dumps(executed["cells"][-1]["outputs"])  # reached the kernel
    assert run.main(["boom", "--profile", "smoke"]) == 0
    assert "boom: up to date" in capsys.readouterr().out
    assert run.main(["boom", "--profile", "smoke", "--force"]) == 0
    assert "boom: ok" in capsys.readouterr().out
    assert run.main(["boom", "--profile", "smoke", "-p", "x", "1"]) == 0  # other parameters: runs again
    assert "boom: ok" in capsys.readouterr().out
    fake_notebook(fake_study, WRITES_METRICS + "\n# edited")  # another notebook: runs again
    assert run.main(["boom", "--profile", "smoke", "-p", "x", "1"]) == 0
    assert "boom: ok" in capsys.readouterr().out
    (isolated_build / "build" / "smoke" / "boom" / "boom.html").unlink()  # an output gone: runs again
    assert run.main(["boom", "--profile", "smoke", "-p", "x", "1"]) == 0
    assert "boom: ok" in capsys.readouterr().out


def test_scoreboard_fails_when_a_study_is_missing_or_failed(fake_study, capsys, isolated_build):
    fake_notebook(fake_study, "raise RuntimeError('deliberate')")
    assert run.main(["all", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: deliberate" in err and "scoreboard is incomplete" in err and "boom failed" in err
    page = (isolated_build / "build" / "smoke" / "report" / "index.html").read_text()
    n = len(registry.notebooks()) - 1
    assert f"{n} of {n}" not in page


@pytest.mark.notebook
def test_ctrl_c_says_what_was_interrupted_and_leaves_no_kernel_files(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, MEMLIB_BUILD=str(tmp_path / "build"), MEMLIB_CACHE=str(tmp_path / "cache"), TMPDIR=str(tmp),
               MEMLIB_THREADS="1")
    # a run long enough to interrupt: a learning rate that never fits, many epochs
    proc = subprocess.Popen([sys.executable, "-m", "memlib.runner", "randomization_tests", "--profile", "smoke",
                             "-p", "lr", "1e-5", "-p", "epochs", "20000"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            # a shell's background job (`cmd &`) ignores SIGINT and its children inherit that:
                            # give the runner the default disposition a terminal's foreground process has
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    record = tmp_path / "build" / "smoke" / "randomization_tests" / "run.json"
    executed = record.parent / "randomization_tests.ipynb"  # papermill saves it once the kernel runs its cells
    deadline = time.time() + 180
    while time.time() < deadline and not (record.exists() and list(tmp.glob("memlib-kernel-*/kernel.json"))
                                          and executed.exists()):
        time.sleep(0.5)
    time.sleep(2)  # the kernel is up and the notebook is running (on a loaded machine that takes a while)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted: randomization_tests" in err and "Traceback" not in err, err
    assert json.loads(record.read_text())["state"] == "interrupted"
    assert not (record.parent / "metrics.json").exists()
    assert list(tmp.iterdir()) == []  # no connection file or socket left behind


def test_full_disk_in_the_notebook_says_so_in_one_line_and_records_a_failure(fake_study, capfd, isolated_build):
    """The kernel's write hits ENOSPC: one line naming the folder and MEMLIB_BUILD, the run recorded as failed (not
    left "running"), nothing left that looks like a result."""
    fake_notebook(fake_study, "import errno\nraise OSError(errno.ENOSPC, 'No space left on device')")
    assert run.main(["boom", "--profile", "smoke"]) == 1
    err = capfd.readouterr().err
    line = next(x for x in err.splitlines() if "boom: FAILED" in x)
    folder = isolated_build / "build" / "smoke" / "boom"
    assert "no space left on the disk holding" in line and str(folder) in line and "MEMLIB_BUILD" in line
    assert "Traceback" not in err
    record = runstate.read("boom", "smoke")
    assert record["state"] == "failed" and record["error"].startswith("no space left")
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_full_disk_for_the_run_record_is_one_line_too(fake_study, capfd, isolated_build, monkeypatch):
    """The runner's own first write (run.json, state "running") fails: the same one line, no traceback, and no
    record claiming the study is running."""
    import errno

    from memlib import files

    fake_notebook(fake_study, WRITES_METRICS)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.tempfile, "mkstemp", full)
    code = run.main(["boom", "--profile", "smoke"])
    err = capfd.readouterr().err
    assert code == 1 and "no space left on the disk holding" in err and "MEMLIB_BUILD" in err
    assert "Traceback" not in err
    assert runstate.read("boom", "smoke") is None or runstate.read("boom", "smoke")["state"] != "running"
