"""Every `yolotal` command the README shows runs as shown, from the repository root (outputs go to a scratch
directory); transcripts start with the output the README prints. `YOUR_...` marks the user's own files."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(bash|text)\n(.*?)```", re.S)


def readme_commands() -> list[tuple[str, str | None]]:
    """(command, first output line of its transcript or None) for each yolotal command in a code block."""
    out = []
    for lang, body in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if lang == "text":
                if not line.startswith("$ yolotal "):
                    continue
                nxt = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("$ ") else None
                out.append((line[2:], nxt))
            elif line.startswith("yolotal "):
                out.append((line.split(" && ")[0], None))
    return out


COMMANDS = readme_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 20
    assert any("--model" in c for c, _ in COMMANDS) and any(c.startswith("yolotal scan") for c, _ in COMMANDS)


@pytest.mark.parametrize("command,first_line", [c for c in COMMANDS if "YOUR_" not in c[0]],
                         ids=[c[0][:70] for c in COMMANDS if "YOUR_" not in c[0]])
def test_readme_command_runs_as_shown(command, first_line, cli, tmp_path, monkeypatch):
    if "--model" in command and importlib.util.find_spec("ultralytics") is None:
        pytest.skip("--model needs the optional extra yolotal[ultralytics]")
    for d in ("samples", "configs", "tests"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "docs").mkdir()  # written to by one example
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    args = shlex.split(command, comments=True)
    assert args[0] == "yolotal"
    code, out, err = cli(*args[1:])
    assert code == 0, f"{command}\n{err}"
    if first_line is not None and first_line.strip() and first_line.strip() != "...":
        norm = lambda x: " ".join(x.split())  # noqa: E731
        assert norm(first_line) in norm(out + err), f"{command}: README shows {first_line!r}"


PY_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def readme_python() -> list[str]:
    """The README's complete Python examples: blocks whose first line is ``import yolotal`` (fragments that use
    tensors defined elsewhere and the training examples start otherwise; the training integration is tested in
    test_ultralytics_training.py)."""
    return [b for b in PY_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
            if b.split("\n", 1)[0].strip() == "import yolotal" and "YOUR_" not in b]


def test_the_readme_shows_the_python_api():
    assert any("yolotal.inspect(" in b for b in readme_python())


@pytest.mark.parametrize("block", readme_python(), ids=lambda b: b.split("\n", 1)[0][:60])
def test_readme_python_runs_as_shown(block, tmp_path, monkeypatch):
    if "model=" in block and importlib.util.find_spec("ultralytics") is None:
        pytest.skip("model= needs the optional extra yolotal[ultralytics]")
    for d in ("samples", "configs", "tests", "examples"):
        (tmp_path / d).symlink_to(ROOT / d)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
