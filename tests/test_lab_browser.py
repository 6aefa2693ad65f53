"""A notebook opened, run and saved in JupyterLab itself (headless Chromium driving `jupyter lab` as `make lab`
starts it) is written back byte for byte as committed.

JupyterLab writes what the kernel reports (``language_info``) and the execution counts into the notebook it saves;
the pre-save hook (``memlib.runner.lab.strip_outputs``) must take them out again, and the committed file must be in
the key order the contents manager writes. Skipped without Chromium, except under CI.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memlib.runner import run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "09_permutation_test.ipynb"
TOKEN = "memlib-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(browser, expression: str, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab: {what} within {timeout:.0f} s")


@pytest.fixture
def lab(tmp_path):
    """`jupyter lab` on a copy of one committed notebook, with `make lab`'s pre-save hook; yields (url, copy)."""
    from test_report_browser import require_chromium

    require_chromium()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copyfile(run.NOTEBOOKS_DIR / NOTEBOOK, folder / NOTEBOOK)
    port = _free_port()
    env = dict(os.environ, MEMLIB_BUILD=str(tmp_path / "build"), MEMLIB_CACHE=str(tmp_path / "cache"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.token={TOKEN}", f"--notebook-dir={folder}", "--LabApp.expose_app_in_browser=True",
           "--MappingKernelManager.default_kernel_name=memlib",
           "--ContentsManager.pre_save_hook=memlib.runner.lab.strip_outputs"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={TOKEN}", folder / NOTEBOOK
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_notebook_run_and_saved_in_jupyterlab_keeps_its_committed_bytes(lab):
    import devtools

    url, copy = lab
    committed = (run.NOTEBOOKS_DIR / NOTEBOOK).read_bytes()
    with devtools.HeadlessChromium(width=1400, height=1000, timeout=120) as browser:
        browser.send("Page.navigate", {"url": url})
        panel = "jupyterapp.shell.currentWidget"
        kernel = f"{panel}.sessionContext.session.kernel"
        _wait(browser, f"!!(window.jupyterapp && {panel} && {panel}.sessionContext && {panel}.sessionContext.session "
                       f"&& {kernel} && {kernel}.status === 'idle' && {panel}.content.widgets.length > 0)",
              "the notebook did not open with an idle kernel")
        # run the parameters cell (cheap; it gets an execution count) and let the kernel report its language_info
        index = browser.evaluate(f"{panel}.content.widgets.findIndex(c => c.model.type === 'code')")
        browser.evaluate(f"{panel}.content.activeCellIndex = {index}; "
                         "jupyterapp.commands.execute('notebook:run-cell')")
        _wait(browser, f"{panel}.content.widgets[{index}].model.executionCount !== null && "
                       f"{kernel}.status === 'idle'", "the cell did not run")
        # Lab holds the kernel's full language_info in memory: the save below has something to strip
        assert browser.evaluate(f"{panel}.model.getMetadata('language_info').version")
        browser.evaluate("jupyterapp.commands.execute('docmanager:save')")
        _wait(browser, f"!{panel}.model.dirty", "the save did not finish")
    assert copy.read_bytes() == committed
