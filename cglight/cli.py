"""``cglight``: the one console script.

    cglight prepare  --config configs/prepare/ala2.yaml --out data/ala2 [--frames N] [--part I/N]
    cglight data     info DIR | verify DIR | merge OUT PART_DIR... | combine OUT DATASET...
    cglight fit      --config configs/quickstart.yaml      (LightningCLI)
    cglight validate --config ... --ckpt_path ...          (LightningCLI)
    cglight test     --config ... --ckpt_path ...          (LightningCLI)
    cglight simulate --config configs/simulate/ala2.yaml   (batched CG Langevin dynamics)
    cglight evaluate --config configs/evaluate/ala2.yaml   (TICA, KL/JS, plots, report)
    cglight diagnose --checkpoint CKPT --data DIR          (what the Hessian terms could teach the model)
    cglight plugins                                        (registered loss plugins)

Every command ends the same way. A known failure (bad input, a ``CGLightError``; an I/O error such
as a missing file, a read-only directory or a full disk; an empty, binary or malformed ``--config``
file) is one line on stderr, ``cglight: error: ...``, naming the file or key at fault, and exit
status 2; ``cglight --debug COMMAND ...`` (the flag comes before the command) adds the traceback.
A parser's usage error keeps the parser's message, exits 2, and is followed by a line naming the
``--config`` file that set the refused option. Anything else is a bug: its traceback is printed,
then one line asking to report it, and the exit status is 1. Ctrl-C exits 130; ``fit`` stopped by
SIGTERM or Ctrl-C saves ``last.ckpt`` at that step and exits 143 or 130 (resumable).
Torch uses one thread per process unless ``CGLIGHT_NUM_THREADS`` says otherwise (two threads
on two shared cores ran ~100× slower than one). Messages and progress bars go to stderr, a command's
results to stdout; third-party notices that do not concern the user are filtered where they arise
(:mod:`cglight.console`). ``--help`` imports no torch (:mod:`cglight.help_cache` for LightningCLI's).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable

from cglight import help_cache
from cglight.config_files import config_arguments, key_sources, read_config_file
from cglight.errors import CGLightError
from cglight.newest_checkpoint import DEFAULT_RUNS

log = logging.getLogger("cglight")
RUNS = str(DEFAULT_RUNS.parent)  # the default directory of logs and checkpoints, unless trainer.default_root_dir is set


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message is logged (not the one at set-up, which a
    notebook or a test runner may have replaced and closed since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        """A message on a line of its own: a progress bar drawn at the time is lifted and redrawn under it."""
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


def _setup(torch_threads: bool = True) -> None:
    """What every command shares: field docstrings in ``--help``; third-party notices and warnings that do not
    concern the user filtered at their source (``cglight.console``); cglight's messages on stderr; and torch's
    threads, unless ``torch_threads`` is false (``--help`` and ``data`` do not import torch)."""
    from jsonargparse import set_parsing_settings

    from cglight.console import quiet_third_party

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docs in --help
    quiet_third_party()
    if torch_threads:
        import torch

        torch.set_num_threads(int(os.environ.get("CGLIGHT_NUM_THREADS", "1")))
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("cglight: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)  # every command (a caller may have reset the level since the handler was added)


def prepare_main(argv: list[str]) -> None:
    from cglight.data.manifest import MANIFEST
    from cglight.prepare.config_file import prepare_config, prepare_parser
    from cglight.prepare.run import Part, prepare_dataset

    values = prepare_parser(COMMANDS["prepare"][0]).parse_args(argv)
    out = prepare_dataset(prepare_config(values), values.out, overwrite=values.overwrite, part=Part.parse(values.part))
    if (out / MANIFEST).is_file():
        log.info("next: cglight fit --config configs/quickstart.yaml --data.path %s", out)


def _dataclass_main(argv: list[str], command: str, config_cls, run: str) -> None:
    """A subcommand whose options are the fields of ``config_cls`` (YAML via --config, or flags); ``run``
    (``module:function``, imported once the options are read: ``--help`` imports no torch) runs it."""
    import importlib

    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog=f"cglight {command}", description=COMMANDS[command][0], default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below")
    parser.add_class_arguments(config_cls, as_group=True)
    values = parser.parse_args(argv)
    module, function = run.split(":")
    getattr(importlib.import_module(module), function)(config_cls(**{k: values[k] for k in config_cls.__dataclass_fields__}))


def simulate_main(argv: list[str]) -> None:
    from cglight.simulate.config import SimulateConfig

    _dataclass_main(argv, "simulate", SimulateConfig, "cglight.simulate.run:simulate")


def evaluate_main(argv: list[str]) -> None:
    from cglight.evaluate.config import EvaluateConfig

    _dataclass_main(argv, "evaluate", EvaluateConfig, "cglight.evaluate.run:evaluate")


def diagnose_main(argv: list[str]) -> None:
    from cglight.diagnose.config import DiagnoseConfig

    _dataclass_main(argv, "diagnose", DiagnoseConfig, "cglight.diagnose.run:diagnose")


def data_main(argv: list[str]) -> int:
    from cglight.data.run import main as data_tools_main

    return data_tools_main(argv)


def plugins_main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):  # before importing the losses (torch)
        print(f"usage: cglight plugins\n\n{COMMANDS['plugins'][0]} (entry-point group 'cglight.losses': a loss term "
              "that an installed package registers there is listed, and usable in model.losses by its name)")
        return
    from cglight.losses.registry import GROUP, discover

    entries = discover()
    print(f"loss plugins (entry-point group '{GROUP}'):")
    for name, e in sorted(entries.items()):
        if e.cls is None:
            print(f"  {name:<12} {e.distribution:<24} BROKEN: {e.error}")
        else:
            doc = (e.cls.__doc__ or "").strip().splitlines()
            needs = "needs HVP" if e.cls.needs_hvp else ""
            print(f"  {name:<12} {e.distribution:<24} {e.value:<45} {needs:<10} {doc[0] if doc else ''}")
    if not entries:
        print("  (none: is cglight installed? run `pip install -e .`)")


def _lightning_main(argv: list[str]) -> int | None:
    """``fit``, ``validate`` or ``test`` (``argv[0]``) through LightningCLI; 128 + the signal when SIGTERM or
    Ctrl-C stopped a run (``last.ckpt`` saved), else None."""
    import signal

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from cglight.data.datamodule import CGDataModule
    from cglight.training.potential import CGPotential

    last: list = []  # the LastCheckpoint callback, once built: it knows which signal stopped the run
    try:
        _lightning_cli(last)(
            CGPotential,
            CGDataModule,
            subclass_mode_model=False,
            subclass_mode_data=False,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "omegaconf", "default_env": False},
            trainer_defaults={
                "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                           "init_args": {"save_dir": RUNS, "name": DEFAULT_RUNS.name}},
                "inference_mode": False,
            },
            args=argv,
        )
    except SIGTERMException:  # SIGTERM or SIGINT: last.ckpt is saved (the callback said where); not finished
        return 128 + int(last[0].interrupted if last and last[0].interrupted else signal.SIGTERM)
    return None


def _lightning_cli(last: list) -> type:
    """cglight's LightningCLI: its callbacks as config sections, ``--ckpt_path`` checked before the model is built
    from it, autograd in validation, logs under ``default_root_dir``, the bars on stderr, the dataset builder
    handed to the data module; the ``LastCheckpoint`` callback is appended to ``last`` once built."""
    from lightning.pytorch.cli import LightningCLI

    from cglight.training.last_checkpoint import LastCheckpoint
    from cglight.training.loss_curves import LossCurves
    from cglight.training.random_state import RandomState
    from cglight.training.run_summary import RunSummary
    from cglight.training.safeguard import RunawayGuard
    from cglight.training.simulation_check import SimulationValidation

    class CGLightCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.add_lightning_class_args(LossCurves, "loss_curves")
            parser.add_lightning_class_args(RandomState, "random_state")
            parser.add_lightning_class_args(RunawayGuard, "runaway_guard")
            parser.add_lightning_class_args(SimulationValidation, "simulation_check")
            parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
            parser.add_lightning_class_args(RunSummary, "run_summary")
            parser.link_arguments("data.path", "simulation_check.reference")

        def parse_arguments(self, parser, args) -> None:
            super().parse_arguments(parser, args)
            command = self.config.get("subcommand")
            if command and self.config[command].get("ckpt_path"):
                # before LightningCLI reads the checkpoint's hyper-parameters into the model's config
                explicit = parser.parse_args(args, defaults=False)[command].get("model")
                _check_ckpt_path(self.config[command], command, explicit.as_dict() if explicit else {})

        def before_instantiate_classes(self) -> None:
            config = self.config[self.subcommand]
            config.trainer.inference_mode = False  # Hessian-vector products need autograd in validation too
            _logs_under_root_dir(config.trainer)

        def after_instantiate_classes(self) -> None:
            super().after_instantiate_classes()
            from cglight.training.progress_bar import bars_on_stderr  # not before: --help would list it as a callback

            bars_on_stderr(self.trainer)
            self.datamodule.dataset_builder = _build_missing_dataset
            last.extend(c for c in self.trainer.callbacks if isinstance(c, LastCheckpoint))

    return CGLightCLI


def _build_missing_dataset(build: str, path) -> None:
    """``data.build``: the command layer builds a missing dataset (``data/`` does not import ``prepare/``)."""
    from cglight.prepare.config_file import build_missing_dataset

    build_missing_dataset(build, path)


def _logs_under_root_dir(trainer) -> None:
    """Loggers writing to the default ``runs/`` write under ``trainer.default_root_dir`` when it is set.

    Checkpoints follow the first logger (``<save_dir>/<name>/version_N/checkpoints``).
    """
    root = trainer.get("default_root_dir")
    loggers = trainer.get("logger")
    if root is None or not loggers or isinstance(loggers, bool):
        return
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init = logger.get("init_args") if hasattr(logger, "get") else None
        if init is not None and init.get("save_dir") == RUNS:
            init["save_dir"] = str(root)


def _checkpoint_folders(trainer) -> tuple[str, list[Path]]:
    """Where this config's runs keep ``last.ckpt``: a description and the candidate folders.

    Lightning's rule: a ModelCheckpoint's ``dirpath`` if set, else ``<save_dir>/<name>/<version>/checkpoints`` of
    the first logger (``save_dir`` defaulting to ``trainer.default_root_dir``), else ``<default_root_dir>/checkpoints``.
    """
    from pathlib import Path

    _logs_under_root_dir(trainer)
    root = Path(trainer.get("default_root_dir") or ".")
    for callback in trainer.get("callbacks") or []:
        dirpath = (callback.get("init_args") or {}).get("dirpath") if hasattr(callback, "get") else None
        if dirpath:
            return str(dirpath), [Path(dirpath)]
    loggers = trainer.get("logger")
    first = loggers[0] if isinstance(loggers, list) and loggers else loggers
    if not first:
        return str(root / "checkpoints"), [root / "checkpoints"]
    init = (first.get("init_args") or {}) if hasattr(first, "get") else {}
    base = Path(init.get("save_dir") or root) / str(init.get("name") or init.get("project") or "lightning_logs")
    return f"{base}/*/checkpoints", sorted(base.glob("*/checkpoints"))


def _newest_last(trainer) -> Path:
    from cglight.newest_checkpoint import NAME, newest

    where, folders = _checkpoint_folders(trainer)
    return newest((f / NAME for f in folders), "--ckpt_path last", where, "no earlier run of this config saved one")


def _check_ckpt_path(config, command: str, explicit_model: dict) -> None:
    """Resolve ``--ckpt_path last``, refuse a file that is not a cglight checkpoint fit for ``command``, and a
    model setting given in the config (file or flag) that differs from the checkpoint's: LightningCLI builds the
    model from the checkpoint's hyper-parameters, so such a setting would be ignored without a word."""
    from pathlib import Path

    from cglight.errors import ConfigError

    if config.ckpt_path == "last":
        config.ckpt_path = str(_newest_last(config.trainer))
    checkpoint = _read_checkpoint(Path(config.ckpt_path), command)
    _check_named_code(config.ckpt_path, explicit_model, checkpoint["hyper_parameters"])
    differ = _differences(explicit_model, checkpoint["hyper_parameters"])
    if differ:
        listed = "; ".join(f"model.{key}: {mine!r} here, {theirs!r} in the checkpoint" for key, mine, theirs in differ)
        raise ConfigError(
            f"--ckpt_path {config.ckpt_path}: the model of the config differs from the checkpoint's ({listed}). "
            "The model (its network, priors, loss terms and weights, learning rate) comes from the checkpoint: "
            "remove these settings or give them the checkpoint's values"
        )


def _check_named_code(path: str, explicit: dict, hparams: dict) -> None:
    """The model is built from the checkpoint's hyper-parameters: a backbone or loss named there by dotted
    path would be imported (its module's code run). Accept one only if the user's own config names it too."""
    from cglight.energy.backbone import BACKBONES
    from cglight.errors import ConfigError

    backbone = hparams.get("backbone") if isinstance(hparams.get("backbone"), dict) else {}
    mine = explicit.get("backbone") if isinstance(explicit.get("backbone"), dict) else {}
    name = backbone.get("name")
    if isinstance(name, str) and name not in BACKBONES and mine.get("name") != name:
        raise ConfigError(f"--ckpt_path {path}: the checkpoint names the backbone class {name!r}; importing it runs its "
                          f"module's code. If you trust it, name it yourself: --model.backbone.name {name}")
    losses = hparams.get("losses") if isinstance(hparams.get("losses"), dict) else {}
    given = explicit.get("losses") if isinstance(explicit.get("losses"), dict) else {}
    dotted = [n for n in losses if isinstance(n, str) and ("." in n or ":" in n) and n not in given]
    if dotted:
        raise ConfigError(f"--ckpt_path {path}: the checkpoint names loss classes by path {dotted}; importing them runs "
                          "their modules' code. If you trust them, name them yourself in --model.losses")


def _read_checkpoint(path: Path, command: str) -> dict:
    """The checkpoint at ``path``, read without unpickling code; ConfigError naming what is wrong with it."""
    import zipfile

    import torch

    from cglight.errors import ConfigError

    if not path.exists():
        raise ConfigError(f"--ckpt_path {path}: no such file")
    if path.is_dir():
        raise ConfigError(f"--ckpt_path {path}: a directory, not a checkpoint file (e.g. <run>/checkpoints/last.ckpt)")
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"--ckpt_path {path}: not a checkpoint (a checkpoint written by `cglight fit` is a torch zip archive)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch's message for a file that is not a plain-data checkpoint is long
        first = (str(exc).strip().splitlines() or [""])[0][:150]
        raise ConfigError(
            f"--ckpt_path {path}: cannot be read as a plain-data torch checkpoint ({type(exc).__name__}: {first})"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        held = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConfigError(f"--ckpt_path {path}: not a Lightning checkpoint (it has no 'state_dict'; it holds {held})")
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or not {"backbone", "losses"} <= set(hparams):
        raise ConfigError(f"--ckpt_path {path}: not the checkpoint of a cglight model (its hyper-parameters lack 'backbone' "
                          "and 'losses')")
    if command == "fit" and not {"optimizer_states", "loops"} <= set(checkpoint):
        raise ConfigError(f"--ckpt_path {path}: holds weights only (no optimizer and loop state), so training cannot resume "
                          "from it")
    return checkpoint


def _leaves(tree, prefix: str) -> dict[str, object]:
    """``{"a.b": value}`` for every leaf of nested dicts (an empty dict is a leaf)."""
    if isinstance(tree, dict) and tree:
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}.{key}").items()}
    return {prefix: tree}


def _loss_options(losses) -> dict:
    """Loss options with the objective's defaults filled in, so that ``force: {}`` equals ``force: {weight: 1.0}``."""
    if not isinstance(losses, dict):
        return losses
    return {name: {"weight": 1.0, "warmup_steps": 0, "ramp_steps": 0, **(options or {})} for name, options in losses.items()}


def _differences(explicit: dict, hparams: dict) -> list[tuple[str, object, object]]:
    """``(key, config's value, checkpoint's value)`` for every model setting given explicitly that the checkpoint
    has otherwise. ``losses`` is compared whole: first its terms, then every option of each; an empty group
    (``bonds: {}``, "on, with defaults") matches any settings of that group."""
    differ = []
    for top, given in explicit.items():
        theirs = hparams.get(top)
        if top == "losses" and isinstance(given, dict) and isinstance(theirs, dict):
            given, theirs = _loss_options(given), _loss_options(theirs)
            if set(given) != set(theirs):
                differ.append(("losses", sorted(given), sorted(theirs)))
                continue
            keys = dict.fromkeys([*_leaves(given, top), *_leaves(theirs, top)])
        else:
            keys = _leaves(given, top)
        for key in keys:
            a, b = _at({top: given}, key), _at({top: theirs}, key)
            if a != b and not (a == {} and isinstance(b, dict)):
                differ.append((key, a, b))
    return differ


def _at(tree, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _lightning(command: str) -> Callable[[list[str]], int | None]:
    def run(argv: list[str]) -> int | None:
        if argv in help_cache.HELP_FLAGS:  # LightningCLI's parser takes seconds of imports: its help is kept
            return help_cache.show(command, lambda: _lightning_main([command, *argv]))
        code = _lightning_main([command, *argv])
        if command == "fit" and code in (0, None) and _interactive():  # everything is imported now: keep the helps
            help_cache.keep_missing(_LIGHTNING, lambda c: _lightning_main([c, "--help"]))
        return code

    return run


def _interactive() -> bool:
    """Whether the command runs in a terminal (where someone may ask for ``--help`` next), as the
    main process (not one of the processes DDP starts for the other ranks)."""
    return sys.stdout.isatty() and os.environ.get("LOCAL_RANK", "0") == "0"


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int | None]]] = {
    "prepare": ("build a dataset: all-atom OpenMM MD, CG map, mapped forces, projected Hessians, shards", prepare_main),
    "fit": ("train a CG potential (LightningCLI; --config FILE, --print_config)", _lightning("fit")),
    "validate": ("evaluate the losses on the validation split (LightningCLI)", _lightning("validate")),
    "test": ("evaluate the losses on the test split (LightningCLI)", _lightning("test")),
    "simulate": ("Langevin dynamics of a trained model from reference starts (--config FILE)", simulate_main),
    "evaluate": ("compare simulated and reference ensembles: TICA, KL/JS, plots, report (--config FILE)", evaluate_main),
    "diagnose": ("can the Hessian terms teach a model anything its forces do not? (--checkpoint, --data)", diagnose_main),
    "plugins": ("list the registered loss plugins", plugins_main),
    "data": ("inspect and join datasets: info DIR, verify DIR, merge OUT PART_DIR..., combine OUT DATASET...", data_main),
}
"""Every subcommand: its one-line description and the function that runs it (exit status or None)."""


DEBUG = "--debug"
"""The global flag, before the command, that adds the traceback to a known failure."""
_LIGHTNING = ("fit", "validate", "test")  # their parser also takes ``-c FILE``
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, then run the same command again",
    errno.EDQUOT: "the disk quota is used up: free some space, then run the same command again",
    errno.EROFS: "choose a directory you can write to",
    errno.EACCES: "choose a directory you can write to, or fix the permissions",
    errno.EPERM: "choose a directory you can write to, or fix the permissions",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == [DEBUG]
    argv = argv[1:] if debug else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: cglight [{DEBUG}] {{" + ",".join(COMMANDS) + "} ...\n\ncommands:")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:<9} {text}")
        print(f"\nRun `cglight COMMAND --help` for the options of a command; `cglight {DEBUG} COMMAND ...` shows the "
              "traceback of an error.")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"cglight: error: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if DEBUG in rest:
        print(f"cglight: error: {DEBUG} goes before the command: cglight {DEBUG} {command} ...", file=sys.stderr)
        return 2
    _setup(torch_threads=command != "data" and not any(a in ("-h", "--help") for a in rest))
    configs: dict[str, dict] = {}
    try:
        if command != "plugins":
            configs = {path: read_config_file(path) for path in config_arguments(rest, short=command in _LIGHTNING)}
        return COMMANDS[command][1](rest) or 0
    except SystemExit as exc:  # a parser's usage error (its message is printed), --help, --print_config
        return _parser_exit(exc, configs, rest)
    except KeyboardInterrupt:
        print("cglight: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends here: known ones on one line, bugs with a traceback
        return _failed(exc, command, debug)


def _failed(exc: Exception, command: str, debug: bool) -> int:
    """Print ``exc`` as the end of ``command``; the exit status."""
    if isinstance(exc, CGLightError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.errno is not None:
        message = f"{_os_error(exc)} (`cglight {DEBUG} {command} ...` shows where)"
    else:
        traceback.print_exception(exc)
        text = " ".join(str(exc).split())[:300]
        print(f"cglight: internal error (a bug): {type(exc).__name__}: {text}; please report it with the traceback above",
              file=sys.stderr)
        return 1
    if debug:
        traceback.print_exception(exc)
    print(f"cglight: error: {message}", file=sys.stderr)
    return 2


def _os_error(exc: OSError) -> str:
    """An I/O error as one line: the file, what the system said, and what to do."""
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    said = exc.strerror or os.strerror(exc.errno)
    if files:
        line = f"{' -> '.join(files)}: {said}"
    else:  # h5py: errno set, the file and the system's words inside a long message
        detail = " ".join(str(said).split())[:400]
        line = detail if os.strerror(exc.errno) in detail else f"{os.strerror(exc.errno)} ({detail})"
    hint = _OS_HINTS.get(exc.errno)
    return f"{line}; {hint}" if hint else line


def _parser_exit(exc: SystemExit, configs: dict[str, dict], argv: list[str]) -> int:
    """The exit status of a parser's ``SystemExit``; after an error, a line naming the config file at fault."""
    if exc.code is None:
        return 0
    if not isinstance(exc.code, int):
        print(f"cglight: error: {exc.code}", file=sys.stderr)
        return 2
    if exc.code != 0 and configs:
        print(f"cglight: error: {_where_set(exc, configs, argv)}", file=sys.stderr)
    return exc.code


def _where_set(exc: SystemExit, configs: dict[str, dict], argv: list[str]) -> str:
    """Where the option a parser refused was set: which ``--config`` files, the command line."""
    found = re.search(r"""(?:Parser key|Option|Key) ["']([^"']+)["']""", str(exc.__context__ or ""))
    if found is None:
        return f"(options read from --config {', '.join(configs)}, then the command line)"
    key = found.group(1)
    files = key_sources(key, configs)
    also = f" and in --config {', '.join(files)}" if files else ""
    if any(a == f"--{key}" or a.startswith((f"--{key}.", f"--{key}=")) for a in argv):
        return f"'{key}' is set on the command line{also}"
    if files:
        return f"'{key}' is set in --config {', '.join(files)}"
    return f"'{key}' is set in none of --config {', '.join(configs)}"


if __name__ == "__main__":
    sys.exit(main())
