"""What a user sees on the console: every command run as a real process on tiny data prints only
cglight's own lines (``cglight: ...``), progress bars (on stderr) and the command's own output;
and the ``--help`` of every command describes every option.

A third-party notice (a library's banner or tip, a warning that does not concern the user, text
printed by C code) fails these tests: the whitelists below name every line a command may print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cglight.cli import COMMANDS, main
from cglight.data.info import LEGEND

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BAR = re.compile(r"[^|\n]*\|[^|\n]*\| *[\d.]+[kMG]?/(?:\?|[\d.]+[kMG]?) \[[^\]\n]*\]")
"""A tqdm progress bar (``desc: 42%|████  | 21/50 [00:01<00:02, 9.1it/s, ...]``)."""
MESSAGE = re.compile(r"cglight: \S.*")
"""cglight's own messages (its logger and its errors)."""

FIT_STDERR = (
    # Lightning's summary of the model it trains, and why training stopped
    r" *\| Name +\| Type .*", r"-+", r"\d+ \| \w+ +\| \w+ .*",
    r"[\d.]+ K? +(Trainable params|Non-trainable params|Total params|Total estimated model params size \(MB\))",
    r"\d+ +(Modules in train mode|Modules in eval mode|Total Flops)",
    r"`Trainer.fit` stopped: `max_epochs=1` reached\.",
    # on a machine with a GPU: which one is used (no such line on a CPU-only machine)
    r"GPU available: True \(\w+\), used: (True|False)", r"LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES: .*",
)
STDOUT = {
    "info": (r"system +beads +frames .*", r"[- ]+", r"ala2 +5 +40 +full .*", *map(re.escape, LEGEND)),
    "plugins": (r"loss plugins \(entry-point group 'cglight\.losses'\):", r"  \w+ +\S+ +[\w.]+:\w+ .*"),
    "diagnose": (
        r"ala2: \d+ training frames; block traces \(kcal/mol/Å²\): .*",
        r"  (hvp|hvp_cov/centered|hvp_cov/uncentered) +(rigid|stiff|soft) .*",
        r"  (hvp|hvp_cov/centered|hvp_cov/uncentered): (carries information|nothing to teach).*",
        r"  gradient of weight × normalised loss in the network's parameters:",
        r"    (force|hvp|hvp_cov) +weight .*",
    ),
}
"""Each command's own output on stdout (a command not named here prints nothing there)."""


def unexpected(text: str, allowed: tuple[str, ...] = (), bars: bool = True) -> list[str]:
    """The lines of ``text`` (split at newlines and carriage returns) that are neither blank, nor a
    progress bar (when ``bars``), nor a cglight message, nor one of ``allowed`` (full matches). Text
    after a bar on the same line is a line of its own."""
    patterns = [MESSAGE, *(re.compile(a) for a in allowed)]
    bad = []
    for line in re.split(r"[\r\n]", ANSI.sub("", text)):
        while bars and (bar := BAR.match(line)):
            line = line[bar.end():].lstrip()  # a bar redrawn in place pads itself with blanks
        if line.strip() and not any(p.fullmatch(line.rstrip()) for p in patterns):
            bad.append(line)
    return bad


def _cglight(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cglight ARGS`` as a real process (the noise comes from imports and from C code), bars on."""
    env = dict(os.environ, CGLIGHT_PROGRESS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "cglight.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every command once, each on the output of the one before: a new user's first hour in a minute."""
    cwd = tmp_path_factory.mktemp("console")
    data = str(tiny_dataset)
    ckpt = "runs/cglight/version_0/checkpoints/last.ckpt"
    commands = {
        "prepare": ["prepare", "--out", "ala2", "--frames", "16", "--stride_steps", "20", "--equilibration_ps", "0.1",
                    "--shard_frames", "8"],
        "info": ["data", "info", data],
        "plugins": ["plugins"],
        "fit": ["fit", "--config", QUICKSTART, "--data.path", data, "--data.build", "null", "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "2", "--trainer.log_every_n_steps", "1", "--data.batch_size", "8",
                "--model.backbone.embedding_dimension", "16", "--model.backbone.num_layers", "1"],
        "simulate": ["simulate", "--checkpoint", ckpt, "--starts", data, "--out", "sim", "--replicas", "2", "--steps", "40",
                     "--save_every", "10", "--flush_every", "20", "--workers", "2"],
        "evaluate": ["evaluate", "--reference", data, "--simulation", "sim", "--out", "eval", "--lag", "2", "--bootstrap", "5",
                     "--floor_draws", "2"],
        "diagnose": ["diagnose", "--checkpoint", ckpt, "--data", data, "--frames", "12", "--gradient_frames", "6"],
    }
    done = {}
    for name, args in commands.items():
        done[name] = r = _cglight(args, cwd)
        assert r.returncode == 0, f"{name}: {r.stderr[-3000:]}"
    return done


def test_a_message_during_a_progress_bar_gets_a_line_of_its_own(monkeypatch):
    """A cglight message logged while a bar is drawn is not written onto the bar's line."""
    import io
    import logging

    from cglight.cli import _setup
    from cglight.progress import progress

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("CGLIGHT_PROGRESS", "1")
    _setup(torch_threads=False)
    bar = progress(range(10), desc="work")
    for i in bar:
        if i == 5:
            logging.getLogger("cglight").info("halfway there")
    bar.close()
    segments = re.split(r"[\r\n]", ANSI.sub("", err.getvalue()))
    assert "cglight: halfway there" in [s.strip() for s in segments]  # not appended to the bar's text


@pytest.mark.slow
@pytest.mark.parametrize("command", ["prepare", "info", "plugins", "fit", "simulate", "evaluate", "diagnose"])
def test_a_command_prints_only_its_own_lines(runs, command):
    r = runs[command]
    assert unexpected(r.stderr, FIT_STDERR if command == "fit" else ()) == [], f"{command}: stderr"
    assert unexpected(r.stdout, STDOUT.get(command, ()), bars=False) == [], f"{command}: stdout"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["prepare", "fit", "simulate"])
def test_progress_bars_are_on_stderr(runs, command):
    """Bars were drawn (CGLIGHT_PROGRESS=1), on stderr with the messages; none on stdout."""
    assert BAR.search(ANSI.sub("", runs[command].stderr))
    assert not BAR.search(runs[command].stdout)


def test_the_whitelist_catches_what_a_new_user_saw():
    """The lines reported in issue 16, each refused by the checks above."""
    seen = [
        "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution will not be available.",
        "Warp 1.19.0 initialized:",
        "/x/lightning/pytorch/cli.py:553: LightningCLI's args parameter is intended to run from within Python like if it "
        "were from the command line.",
        "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
        "/x/lightning/pytorch/utilities/_pytree.py:21: `isinstance(treespec, LeafSpec)` is deprecated",
        "dcdplugin) detected standard 32-bit DCD file of native endianness",
        "GPU available: False, used: False",
        "Epoch 0: 100%|██████████| 2/2 [00:00<00:00, 15.29it/s, v_num=0]dcdplugin) CHARMM format DCD file",
    ]
    for line in seen:
        assert unexpected(line, FIT_STDERR) == [line.split("]", 1)[-1] if "Epoch" in line else line]
    assert unexpected("Epoch 0: 100%|██████████| 2/2 [00:00<00:00, 15.29it/s]", STDOUT["diagnose"], bars=False)
    assert unexpected("\rala2: all-atom MD:  50%|█████     | 20/40 [00:00<00:00, 438.89frame/s]\ncglight: done\n") == []


# --help: quick (benchmarks/help_time.py measures it), and every option described


def _entries(text: str) -> list[tuple[str, str]]:
    """``(option, description)`` of every option, positional argument and subcommand a parser's help lists."""
    entries: list[list[str]] = []
    section = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line
            continue
        if section.startswith("subcommands"):  # jsonargparse's: a paragraph, then each name and its description
            sub = re.match(r"^    (\w\S*)(?: {2,}(\S.*))?$", line)
            if sub:
                entries.append([sub.group(1), sub.group(2) or ""])
            elif entries and entries[-1][0][0].isalnum() and re.match(r"^ {5,}\S", line):
                entries[-1][1] += " " + line.strip()
            continue
        head = re.match(r"^  (\S.*?)(?: {2,}(\S.*))?$", line)
        if head and (head.group(1).startswith("-") or section.startswith("positional")):
            entries.append([head.group(1), head.group(2) or ""])
        elif entries and line.startswith("    "):
            entries[-1][1] += " " + line.strip()
    return [(option, description) for option, description in entries]


def _described(description: str) -> bool:
    """Whether a description says more than the type and default jsonargparse adds to any option."""
    return bool(re.sub(r"\((required, )?type: .*\)$|\(default: .*\)$", "", description).strip())


HELPS = [[c] for c in COMMANDS] + [["data", "info"], ["data", "verify"], ["data", "merge"], ["data", "combine"]]


@pytest.mark.parametrize("command", HELPS, ids=" ".join)
def test_help_describes_every_option(command, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main([*command, "--help"]) == 0
    captured = capsys.readouterr()
    entries = _entries(captured.out)
    usage = captured.out.splitlines()[0]
    assert usage.startswith("usage: ") and f" {' '.join(command)} " in f"{usage} " and captured.err == ""
    assert [option for option, description in entries if not _described(description)] == []
    assert command == ["plugins"] or len(entries) >= 2
    # oracle for the commands built from a config dataclass: one described option per field
    configs = {"prepare": "cglight.prepare.config:PrepareConfig", "simulate": "cglight.simulate.config:SimulateConfig",
               "evaluate": "cglight.evaluate.config:EvaluateConfig", "diagnose": "cglight.diagnose.config:DiagnoseConfig"}
    if command[0] in configs:
        import importlib

        module, name = configs[command[0]].split(":")
        fields = getattr(importlib.import_module(module), name).__dataclass_fields__
        options = {option.split()[0].split(",")[0] for option, _ in entries}
        assert {f"--{field}" for field in fields} <= options


def test_plugins_help_names_the_entry_point_group(capsys):
    from cglight.losses.registry import GROUP

    assert main(["plugins", "--help"]) == 0
    assert f"entry-point group '{GROUP}'" in capsys.readouterr().out


def test_help_imports_no_torch():
    """``--help`` of a command built from a config dataclass, and of ``data``, imports none of the heavy libraries."""
    code = ("import sys, contextlib, io\nfrom cglight.cli import main\n"
            "for c in (['prepare'], ['simulate'], ['evaluate'], ['diagnose'], ['data', 'info'], ['plugins']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n        assert main([*c, '--help']) == 0\n"
            "print(sorted(m for m in ('torch', 'lightning', 'openmm', 'mdtraj') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_lightning_help_is_kept_and_the_kept_text_is_the_same(command, capsys, monkeypatch, tmp_path):
    """The first ``--help`` builds LightningCLI's parser and keeps its text; the next prints that text
    without building anything; a different terminal width builds it anew."""
    import cglight.cli as cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "100")
    assert main([command, "--help"]) == 0
    fresh = capsys.readouterr().out
    assert f"--{'ckpt_path'}" in fresh and "--trainer.max_epochs" in fresh
    assert len(list((tmp_path / "cglight").glob(f"help-{command}-*.txt"))) == 1

    built = []

    def parser_built(argv):
        built.append(argv)
        print("built again")

    monkeypatch.setattr(cli, "_lightning_main", parser_built)
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out == fresh and built == []
    monkeypatch.setenv("COLUMNS", "90")
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out == "built again\n" and built == [[command, "--help"]]


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [True, False])
def test_fit_in_a_terminal_keeps_every_lightning_help(terminal, tiny_dataset, capsys, monkeypatch, tmp_path):
    """A ``fit`` run from a terminal leaves the help of fit, validate and test kept, each the same text
    a fresh ``--help`` builds; a fit whose output is not a terminal keeps none."""
    import cglight.cli as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(cli, "_interactive", lambda: terminal)
    small = ["--model.backbone.embedding_dimension", "16", "--model.backbone.num_layers", "1", "--data.batch_size", "8"]
    assert main(["fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--data.path", str(tiny_dataset),
                 "--data.build", "null", *small, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"]) == 0
    kept = {p.name.split("-")[1]: p.read_text() for p in (tmp_path / "cache" / "cglight").glob("help-*.txt")}
    assert sorted(kept) == (["fit", "test", "validate"] if terminal else [])
    if terminal:
        capsys.readouterr()
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
        assert main(["validate", "--help"]) == 0
        assert capsys.readouterr().out == kept["validate"] and "--trainer.max_epochs" in kept["fit"]


def test_help_key_follows_the_source(tmp_path, monkeypatch):
    """Editing any cglight source file changes the key of the kept help."""
    import shutil

    from cglight import help_cache

    copy = tmp_path / "cglight"
    shutil.copytree(Path(help_cache.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(help_cache, "__file__", str(copy / "help_cache.py"))
    before = help_cache.key("fit")
    assert help_cache.key("fit") == before
    with open(copy / "training" / "potential.py", "a") as f:
        f.write("\n# a changed docstring\n")
    assert help_cache.key("fit") != before


def test_building_a_model_from_python_prints_nothing():
    """Warp starts (for torchmd-net's kernels) without its banner, and without its no-driver warning on a
    machine where torch sees no GPU either."""
    code = ("from cglight.energy import BackboneConfig, build_backbone\n"
            "build_backbone(BackboneConfig(embedding_dimension=8, num_layers=1))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == ("", "")


@pytest.mark.parametrize("progress", ["1", "0"])
def test_lightnings_bar_is_swapped_for_one_on_stderr(progress, capsys, monkeypatch):
    import lightning as L

    from cglight.training.progress_bar import StderrProgressBar, bars_on_stderr

    monkeypatch.setenv("CGLIGHT_PROGRESS", progress)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_model_summary=False, max_steps=1)
    bars_on_stderr(trainer)
    (bar,) = [c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.ProgressBar)]
    assert type(bar) is StderrProgressBar and bar.is_disabled == (progress == "0")
    capsys.readouterr()
    for make in (bar.init_sanity_tqdm, bar.init_train_tqdm, bar.init_test_tqdm, bar.init_predict_tqdm):
        shown = make()
        shown.reset(3)
        shown.update(3)
        shown.close()
    captured = capsys.readouterr()
    assert captured.out == "" and (BAR.search(ANSI.sub("", captured.err)) is not None) == (progress == "1")
