"""A plain (non-editable) install works: the wheel carries models/, db/ and the base-domain
features, and the code finds them through importlib.resources. Builds the wheel, installs it into a fresh venv that borrows this venv's
dependencies, and runs `labeler autolabel sample_data` from outside the source tree."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def test_wheel_install_runs_autolabel(tmp_path):
    wheels = tmp_path / "wheels"
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheels)])
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("labeler-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    new_site = Path(_run([str(py), "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip())
    # the dependencies come from this venv (a path entry only: its editable-install hook is not loaded)
    (new_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(new_site), str(wheel)])
    assert r.returncode == 0, r.stderr[-2000:]

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELER_", "PYTHON"))}
    where = _run([str(py), "-c", "import labeler.resources as r; print(r.models_dir()); print(r.migrations_dir())"], cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    models, migrations = where.stdout.split()
    assert models.startswith(str(new_site)) and migrations.startswith(str(new_site)), where.stdout
    # issue 32: the base's domain ships as features inside the wheel, found through importlib.resources
    code = ("from labeler.fer.resolver import shipped_model; from labeler.training.basedomain import load_base_domain; "
            "d, why = load_base_domain(shipped_model()); print(d.where if d else why); print(len(d.gate), len(d.replay))")
    r = _run([str(py), "-c", code], cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    where_npz, sizes = r.stdout.splitlines()
    assert where_npz.startswith(str(new_site)) and where_npz.endswith(".npz") and min(map(int, sizes.split())) >= 1000, r.stdout

    r = _run([str(py), "-m", "labeler.cli", "autolabel", str(SAMPLE), "--db", str(work / "w.db"), "-q"], cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "faces" in r.stdout
    r = _run([str(py), "-m", "labeler.cli", "status", "--db", str(work / "w.db")], cwd=work, env=env)
    assert r.returncode == 0 and "auto-accepted" in r.stdout, r.stderr
    faces = int(next(line for line in r.stdout.splitlines() if line.startswith("faces")).split()[-1])
    assert faces >= 3
    # the weighted alpha's label distance ships as package data
    r = _run([str(py), "-c", "from labeler.quality.agreement import label_distance as d; print(d(('sad', 'neutral'))[0, 1])"],
             cwd=work, env=env)
    assert r.returncode == 0 and 0 < float(r.stdout) < 1, r.stderr
