"""The shape of the package: one installed namespace, layers that only import downwards, imports
at module top (only heavy libraries load lazily, each marked), and a map in
docs/ARCHITECTURE.md drawn from the same contract CI checks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("tools", "workflows", "training", "data_synth")
SOURCES = ("agentrt", *FOLDERS)


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return layers


def test_the_layers_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_every_top_level_package_is_a_layer():
    """`exhaustive` in the contract makes lint-imports fail on an unlisted package; this says
    which one in plain words."""
    listed = {part.strip() for layer in _contract()["layers"] for part in layer.split("|")}
    packages = {p.name for p in (ROOT / "agentrt").iterdir()
                if (p / "__init__.py").is_file()} | {p.stem for p in (ROOT / "agentrt").glob("*.py")
                                                      if p.stem not in ("__init__", "__main__")}
    assert packages == listed


def test_the_source_folders_install_only_inside_the_agentrt_namespace(tmp_path):
    for folder in FOLDERS:
        link = ROOT / "agentrt" / folder
        assert link.is_symlink() and link.resolve() == ROOT / folder
    code = ("import importlib, sys\n"
            f"for name in {FOLDERS!r}:\n"
            "    importlib.import_module('agentrt.' + name)\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ModuleNotFoundError:\n"
            "        continue\n"
            "    sys.exit('importable outside the namespace: ' + name)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _in_function_imports():
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            lines = text.splitlines()
            for fn in ast.walk(ast.parse(text)):
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for node in ast.walk(fn):
                        if isinstance(node, (ast.Import, ast.ImportFrom)):
                            yield path.relative_to(ROOT), node, lines[node.lineno - 1]


def test_imports_inside_functions_are_marked_heavy_libraries():
    """A function may import only a heavy third-party library (marked `# heavy: <lib>`), or, in
    the package's front doors (`import agentrt`, the CLI's commands), the runtime, the store or
    a server (`# lazy: ...`), so `import agentrt` and the CLI stay cheap."""
    unmarked, heavy_own = [], []
    for path, node, line in _in_function_imports():
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        mark = re.search(r"# (heavy|lazy):", line)
        if not mark:
            unmarked.append(f"{path}:{node.lineno}: {line.strip()}")
        elif mark[1] == "heavy" and (module or "").startswith("agentrt"):
            heavy_own.append(f"{path}:{node.lineno}: {line.strip()}")
    assert not unmarked, "imports inside functions without a mark:\n" + "\n".join(unmarked)
    assert not heavy_own, "agentrt modules marked heavy:\n" + "\n".join(heavy_own)


def test_architecture_doc_draws_the_contract():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = doc.split("## Layers", 1)[1].split("```", 2)[1]
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == [" | ".join(p.strip() for p in layer.split("|"))
                     for layer in _contract()["layers"]]


@pytest.mark.parametrize("script", ["training/iterate.py", "training/train.py"])
def test_training_scripts_run_as_scripts_without_path_hacks(script):
    assert "sys.path" not in (ROOT / script).read_text()
    proc = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
