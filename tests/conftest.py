from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the console entry point in-process: returns (exit code, stdout, stderr)."""
    from yolotal.cli import main

    def run(*args: str):
        monkeypatch.setattr(sys, "argv", ["yolotal", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def write(tmp_path):
    """write("name.txt", text) -> path inside tmp_path."""

    def w(name: str, text: str | bytes) -> Path:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)
        return p

    return w


@pytest.fixture
def tal_strides(monkeypatch):
    """Until the pipeline builds its TALParams with ``TALParams.from_config`` (the v8.4.0 profile needs the model's
    strides, not only stride_val), give the TALParams of each ``_assign_tal`` call the strides of the config being
    run. A no-op once the pipeline does it itself."""
    import functools
    import inspect

    import yolotal.pipeline as pl
    from yolotal.assigners.tal import TALParams

    if "from_config" in inspect.getsource(pl._assign_tal):
        return
    orig = pl._assign_tal

    def assign_tal(trace, cfg, *args, **kwargs):
        shim = functools.partial(TALParams, strides=tuple(float(s) for s in cfg.strides))
        monkeypatch.setattr(pl, "TALParams", shim)
        try:
            return orig(trace, cfg, *args, **kwargs)
        finally:
            monkeypatch.setattr(pl, "TALParams", TALParams)

    monkeypatch.setattr(pl, "_assign_tal", assign_tal)
