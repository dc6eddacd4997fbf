"""Each setting is declared once (rnn_gpu/settings.py, TrainConfig's fields):
the README's synopsis, every command's flags and help, the checks of values
given in Python and the resume rules must follow from that declaration."""
import argparse
import dataclasses
import math
import re
from pathlib import Path

import pytest

import rnn_gpu
from rnn_gpu.cli import build_parser, main
from rnn_gpu.settings import NOT_GIVEN, declared, flag, shown
from rnn_gpu.training import DEFAULT_STEPS, MODEL_FIELDS, TrainConfig

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"  # the synopsis under its `## Synopsis` heading
SETTINGS = declared(TrainConfig)


def absent(value) -> bool:
    """No default to show: None, not given, an unset switch, an empty text or list."""
    return value is None or value is NOT_GIVEN or value is False or (isinstance(value, (str, list)) and not value)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser) -> dict[str, argparse.Action]:
    """Each option string of a parser (but --help) -> its action."""
    return {s: a for a in parser._actions if a.option_strings and a.dest != "help" for s in a.option_strings}


def readme_synopsis() -> dict[str, list[tuple[str, str | None]]]:
    """The synopsis (docs/cli.md's `## Synopsis` block): per command, its (flag, shown value) pairs."""
    text = CLI_DOC.read_text(encoding="utf-8")
    block = text.split("\n## Synopsis\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands: dict[str, list] = {}
    command = None
    for line in block.splitlines():
        if line.startswith("rnn-gpu "):
            command = line.split()[1]
        elif not line.startswith(" "):
            command = None  # another program's line
        if command:
            pairs = re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)(?: ([^\s\[\]]+))?", line.split(" ", 2)[-1])
            commands.setdefault(command, []).extend((f, None if v in (None, "|", "...") else v) for f, v in pairs)
    return commands


def default_words(action) -> str | None:
    """How the help and the synopsis say the default of `action`: its value,
    or for a declared setting without one, what that means; None if nothing."""
    if not absent(action.default):
        return shown(action.default)
    field = SETTINGS.get(action.dest)
    return field.metadata["setting"].absent or None if field is not None and action.default is not False else None


def test_every_training_field_is_a_declared_setting_with_a_flag():
    parser = subparsers()["train"]
    assert set(SETTINGS) == {f.name for f in dataclasses.fields(TrainConfig)}
    for name, field in SETTINGS.items():
        action = options(parser)[flag(name)]
        assert action.dest == name
        expected = field.default if field.metadata["setting"].kind is not tuple else []
        assert action.default == expected, name


def test_resume_rules_follow_the_owners():
    # The model and data settings a checkpoint fixes, as they were listed by hand before the declaration.
    assert set(MODEL_FIELDS) == {"hidden", "layers", "batch", "seq", "optimizer", "lr", "lr_schedule", "warmup",
                                 "min_lr", "clip", "clip_norm", "dropout", "vocab", "vocab_size", "val_fraction",
                                 "val_chars", "include", "exclude", "dtype", "seed", "init_from", "dropout_masks",
                                 "weight_drop", "zoneout", "residual", "init", "init_scale", "output_bias", "ar", "tar",
                                 "weight_decay", "tie_weights"}


@pytest.mark.parametrize("command", ["train", "sample", "bench", "prepare", "plot"])
def test_readme_synopsis_agrees_with_the_parser(command):
    synopsis = readme_synopsis()[command]
    parser_options = options(subparsers()[command])
    assert {f for f, _ in synopsis} <= set(parser_options), "the README names a flag the command lacks"
    named = {parser_options[f] for f, _ in synopsis}
    missing = {a.option_strings[-1] for a in parser_options.values()} - {a.option_strings[-1] for a in named}
    assert not missing, f"flags of `rnn-gpu {command}` missing from the README's synopsis: {sorted(missing)}"
    for name, value in synopsis:
        action = parser_options[name]
        if value is None:
            continue
        alternatives = value.split("|")
        placeholders = [v for v in alternatives if not v[:1].islower() and not v[:1].isdigit()]
        if action.choices and len(alternatives) > 1:
            literal = [v for v in alternatives if v not in placeholders]
            assert set(literal) <= set(action.choices), (name, value)
            assert placeholders or set(literal) == set(action.choices), (name, value)
            assert absent(action.default) or alternatives[0] == action.default, (name, value, action.default)
        elif placeholders:
            assert absent(action.default), f"{name} shows {value} but has the default {action.default}"
        else:  # a literal: the default, or for a setting not given, the first word of what that means
            words = default_words(action)
            assert words is not None and _same(value, words.split()[0].rstrip(";,")), (name, value, words)


def _same(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b))
    except ValueError:
        return a == b


@pytest.mark.parametrize("command", ["train", "sample", "bench", "prepare", "plot"])
def test_help_states_each_default(command, capsys):
    for action in set(options(subparsers()[command]).values()):
        words = default_words(action)
        if words is not None:
            assert f"default {words}" in action.help, (action.option_strings, action.help)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in SETTINGS.values() if command == "train" else ():
        assert flag(field.name) in text and " ".join(field.metadata["setting"].help.split()[:3]) in text


def bad_values(field):
    """Values just outside a setting's declaration, and of the wrong type."""
    spec = field.metadata["setting"]
    if spec.choices:
        return ["no-such-" + field.name]
    if spec.kind is int:
        values = [spec.low - 1, 1.5, True]
        return values + ([spec.high + 1] if spec.high != math.inf else [])
    if spec.kind is float:
        low = spec.low - 1e-9 if spec.low_inclusive else spec.low
        return [low, spec.high * 1.001 + 1e-9, float("nan"), True]
    return ["*.txt"] if spec.kind is tuple else [1]


@pytest.mark.parametrize("name", list(SETTINGS))
def test_python_and_the_command_line_refuse_the_same_values(name, corpus_file, tmp_path, capsys):
    field = SETTINGS[name]
    for value in bad_values(field):
        with pytest.raises(rnn_gpu.UsageError, match=name):
            rnn_gpu.train(corpus_file, tmp_path / "api", **{"hidden": 8, "batch": 2, "seq": 4, "steps": 2, name: value})
        spec = field.metadata["setting"]
        if isinstance(value, bool) or spec.kind in (bool, tuple):
            continue  # not something a command line can say
        code = main(["train", str(corpus_file), "--out", str(tmp_path / "cli"), flag(name), str(value), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and flag(name) in err[0], err
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


def test_the_bounds_themselves_are_accepted():
    for name, field in SETTINGS.items():
        spec = field.metadata["setting"]
        edges = [spec.low, spec.high] if spec.kind in (int, float) else list(spec.choices)
        for value in edges:
            if value != math.inf and not (spec.kind is float and value == spec.low and not spec.low_inclusive):
                needs = {"vocab": "words"} if name == "vocab_size" else {}  # a size only goes with words
                TrainConfig(**{"lr": 10.0, **needs, name: value})._check()


def test_not_given_is_not_unbounded():
    assert TrainConfig().steps is NOT_GIVEN and TrainConfig().time is NOT_GIVEN
    new = TrainConfig().run_length()
    assert (new.steps, new.time) == (DEFAULT_STEPS, None)
    timed = TrainConfig(time=60.0).run_length()
    assert (timed.steps, timed.time) == (None, 60.0)  # until the time runs out
    saved = {"steps": 30, "time": None}
    assert (TrainConfig().run_length(saved).steps, TrainConfig().run_length(saved).time) == (30, None)
    assert TrainConfig(steps=50).run_length({"steps": 30, "time": 9.0}).time is None  # given: the length is new
    longer = TrainConfig(time=120.0).run_length({"steps": 30, "time": 60.0})
    assert (longer.steps, longer.time) == (None, 120.0)
    assert TrainConfig().run_length({"steps": None, "time": None}).steps == DEFAULT_STEPS
    with pytest.raises(rnn_gpu.UsageError, match="steps= or time="):
        TrainConfig(steps=None).validate()  # unbounded both ways: no run length at all


def test_the_command_line_passes_not_given_through(tmp_path):
    args = build_parser().parse_args(["train", "--out", str(tmp_path)])
    assert args.steps is NOT_GIVEN and args.time is NOT_GIVEN
