"""Hostile input: values out of range or not finite, empty names, huge grids, random bytes and random
values fed to the config and sweep-file loaders (one line `optlab: error: ...`, no run), and reports
that print neither credentials nor raw HTML."""

import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optlab.cli import main
from optlab.config import MAX_COUNT, MAX_SEED, MAX_WIDTH, RunConfig
from optlab.errors import ConfigError
from optlab.sweeps import load
from optlab.sweeps.spec import parse

BAD_VALUES = [
    (["--weight-decay", "inf"], "weight_decay must be a finite number, got inf"),
    (["--weight-decay", "nan"], "weight_decay must be a finite number, got nan"),
    (["--weight-decay", "-1"], "weight_decay must be non-negative, got -1.0"),
    (["--seed", "99999999999999999999"], f"seed must be an integer in [0, {MAX_SEED}], got 99999999999999999999"),
    (["--seed", "-1"], "seed must be an integer in [0,"),
    (["--experiment", ""], "experiment must be a non-empty printable name"),
    (["--experiment", "   "], "experiment must be a non-empty printable name"),
    (["--run-name", ""], "run_name must be a non-empty printable name"),
    (["--hidden", ""], "invalid hidden sizes: '' is empty"),
    (["--hidden", "16,0"], "hidden must be a list of layer widths in [1,"),
    (["--hidden", str(MAX_WIDTH + 1)], "hidden must be a list of layer widths in [1,"),
    (["--lr", "inf"], "lr must be finite, got inf"),
    (["--lr", "nan"], "lr must be finite, got nan"),
    (["--epochs", "1e400"], "argument --epochs: 1e400 is too large"),  # named as typed, not as inf
    (["--steps", str(MAX_COUNT + 1)], "steps must be a positive integer up to 1,000,000,000"),
    (["--label-noise", "nan"], "label_noise must be in [0, 1], got nan"),
    (["--target", "nan"], "target must be a validation accuracy in (0, 1], got nan"),
    (["--momentum", "nan"], "momentum must be in [0, 1), got nan"),
    (["--decay-rate", "inf"], "decay_rate must be finite, got inf"),
]


@pytest.mark.parametrize("argv,message", BAD_VALUES)
def test_bad_values_are_one_line_before_any_run(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = main(["run", "-d", "digits", "--steps", "2", "-q", *argv])
    except SystemExit as exc:  # argparse's own type errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert not (tmp_path / "mlruns").exists()  # refused before the store is even opened


def test_hidden_none_is_an_explicit_network_without_hidden_layer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    assert main(["run", "-d", "digits", "--hidden", "none", "--steps", "3", "-q", "--no-track"]) == 0
    assert "FINISHED" in capsys.readouterr().out


def test_a_nan_in_a_grid_axis_names_file_axis_and_value(tmp_path):
    path = tmp_path / "nan.toml"
    path.write_text('name = "nan"\n[base]\ndataset = "digits"\nsteps = 2\n[grid]\nweight_decay = [0.0, nan]\n')
    with pytest.raises(
        ConfigError, match=r"nan.toml \[grid\] weight_decay: weight_decay must be a finite number, got nan"
    ):
        load(path, check_plans=False)


def test_a_huge_grid_is_refused_at_once_with_the_count_and_the_override(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    path = tmp_path / "huge.toml"
    path.write_text(
        'name = "huge"\n[base]\ndataset = "digits"\nsteps = 2\n[grid]\n'
        f"seed = {list(range(1000))}\nlr = {[0.001 * (i + 1) for i in range(100)]}\n"
    )
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expands to 100,000 points" in err and "--max-points 100000" in err, err
    # the override lifts the cap (a dry run lists the points and records nothing)
    small = tmp_path / "small.toml"
    small.write_text(
        'name = "small"\n[base]\ndataset = "digits"\nsteps = 2\n[grid]\nstrategy = ["adam"]\n'
        '[tune]\nlr = [0.1, 0.2]\nobjective = "train_loss"\nseeds = [0, 1, 2]\n[rerun]\nseeds = [3]\n'
    )
    assert main(["sweep", str(small), "--max-points", "6"]) == 2  # 2 lrs x 3 tuning seeds + 1 rerun
    assert "expands to 7 points" in capsys.readouterr().err
    assert main(["sweep", str(small), "--max-points", "7", "--dry-run"]) == 0
    assert not (tmp_path / "mlruns").exists()


# ---- property-style: random bytes and random values ------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_as_a_sweep_file_are_one_line_and_record_nothing(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / "random.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load(path, check_plans=False)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=300))
def test_random_bytes_through_the_command_are_one_line_and_leave_no_store(tmp_path_factory, data):
    import os

    folder = tmp_path_factory.mktemp("cli")
    path = folder / "random.toml"
    path.write_bytes(data)
    os.environ["OPTLAB_HOME"] = str(folder)
    try:
        import io
        from contextlib import redirect_stderr

        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["sweep", str(path), "-q"])
    finally:
        os.environ.pop("OPTLAB_HOME", None)
    text = err.getvalue()
    assert code == 2 and text.startswith("optlab: error: ") and text.count("\n") == 1, text
    assert not (folder / "mlruns").exists()


# Every numeric field, with the range a run accepts: an independent statement of RunConfig.validate.
FLOAT_RANGES = {  # key: (low, high, low inclusive, high inclusive)
    "lr": (0, math.inf, False, False),
    "epochs": (0, math.inf, False, False),
    "seconds": (0, math.inf, False, False),
    "decay_every": (0, math.inf, False, False),
    "decay_rate": (0, math.inf, False, False),
    "momentum": (0, 1, True, False),
    "weight_decay": (0, math.inf, True, False),
    "label_noise": (0, 1, True, True),
    "target": (0, 1, False, True),
}
OPTIONAL = {
    "lr",
    "momentum",
    "weight_decay",
    "epochs",
    "seconds",
    "target",
    "steps",
    "evaluations",
    "batch_size",
    "eval_every",
    "train_size",
}  # None means "the default"
INT_RANGES = {
    "steps": (1, MAX_COUNT),
    "evaluations": (1, MAX_COUNT),
    "batch_size": (1, MAX_COUNT),
    "eval_every": (1, MAX_COUNT),
    "log_every": (1, MAX_COUNT),
    "train_size": (1, MAX_COUNT),
    "seed": (0, MAX_SEED),
    "noise_seed": (0, MAX_SEED),
}


def in_range(key, value) -> bool:
    if key in FLOAT_RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        low, high, low_in, high_in = FLOAT_RANGES[key]
        return (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    low, high = INT_RANGES[key]
    return low <= value <= high


hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 1e-320, 1e308, 2**31, 2**31 - 1, 2**32, 2**63, 10**9, 10**9 + 1, 1.0, 0.999999]),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted({**FLOAT_RANGES, **INT_RANGES})), hostile_numbers)
def test_random_values_are_accepted_only_in_range(key, value):
    allowed = in_range(key, value) or (value is None and key in OPTIONAL)
    try:
        config = RunConfig.from_dict({key: value})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and key in message, message
        assert not allowed, f"{key}={value!r} is valid but was refused: {message}"
        return
    assert allowed, f"{key}={value!r} was accepted"
    assert getattr(config, key) == (float(value) if key in FLOAT_RANGES and value is not None else value)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


toml_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 2**31, 10**9 + 1, 1e308, -0.0]),
    st.booleans(),
    st.text(alphabet=string.ascii_letters, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted({**FLOAT_RANGES, **INT_RANGES})), toml_numbers, st.sampled_from(["base", "grid"]))
def test_random_values_in_a_sweep_file_are_refused_in_one_line_unless_in_range(key, value, section):
    import tomllib

    literal = toml_value(value)
    base = {"dataset": '"digits"', "steps": "2"}
    if section == "base":
        base[key] = literal
    text = 'name = "fuzz"\n[base]\n' + "".join(f"{k} = {v}\n" for k, v in base.items())
    if section == "grid":
        text += f"[grid]\n{key} = [{literal}]\n"

    data = tomllib.loads(text)
    try:
        spec = parse(data, "fuzz.toml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.toml") and "\n" not in message and key in message, message
        assert not in_range(key, value), f"{key}={value!r} is in range but was refused: {message}"
        return
    assert in_range(key, value), f"{key}={value!r} was accepted"
    expected = float(value) if key in FLOAT_RANGES else value  # an integer is accepted where a number is wanted
    assert spec.points and all(getattr(p.config, key) == expected for p in spec.points)


# ---- reports ---------------------------------------------------------------------------------------
def test_reports_mask_credentials_and_escape_everything(tmp_path):
    import pandas as pd
    from pypdf import PdfReader

    from optlab.reports import render
    from optlab.reports.model import Note, Section, Table

    uri = "http://alice:s3cr3t@tracking.example:5000/<b>bold</b>"
    section = Section(1, "Store <i>details</i>", intro=f"Read from {uri}.")
    section.add(Note(f"<script>alert('x')</script> from `{uri}`"))
    section.add(Table(pd.DataFrame({"store": [uri], "name": ["<img src=x onerror=alert(1)>"]}), f"Runs in {uri}"))
    html = render.write_html([section], tmp_path / "r.html", uri).read_text()
    assert "s3cr3t" not in html and "alice" not in html
    assert "http://***@tracking.example:5000" in html
    assert (
        "<script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html and "<i>details" not in html
    )
    assert "&lt;script&gt;" in html and "&lt;i&gt;details&lt;/i&gt;" in html
    pdf = render.write_pdf([section], tmp_path / "r.pdf", uri)
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "s3cr3t" not in text and "alice" not in text and "***@tracking.example" in text


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-j", "100000"], "--workers 100000 is more than 4 local processes per CPU"),
        (["-j", "0"], "workers must be a positive integer, got 0"),
        (["--wait", "-1"], "--wait must be between 0 and 604800 seconds"),
        (["--wait", "nan"], "--wait must be between 0 and 604800 seconds"),
        (["--max-points", "0"], "--max-points must be a positive integer"),
    ],
)
def test_bad_sweep_arguments_are_one_line_before_anything_is_recorded(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "ok.toml"
    path.write_text('name = "ok"\n[base]\ndataset = "digits"\nsteps = 2\n[grid]\nseed = [0]\n')
    assert main(["sweep", str(path), "-q", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "mlruns").exists()


CLI_FLAGS = {
    "lr": "--lr",
    "epochs": "--epochs",
    "seconds": "--seconds",
    "decay_every": "--decay-every",
    "decay_rate": "--decay-rate",
    "momentum": "--momentum",
    "weight_decay": "--weight-decay",
    "label_noise": "--label-noise",
    "target": "--target",
    "steps": "--steps",
    "evaluations": "--evaluations",
    "batch_size": "--batch-size",
    "eval_every": "--eval-every",
    "log_every": "--log-every",
    "train_size": "--train-size",
    "seed": "--seed",
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(sorted(CLI_FLAGS)),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**80), max_value=2**80)),
)
def test_random_out_of_range_values_on_the_command_line_are_one_line_and_no_run(tmp_path_factory, key, value):
    import io
    import os
    from contextlib import redirect_stderr

    if in_range(key, value) or (key in FLOAT_RANGES and isinstance(value, int) and in_range(key, float(value))):
        return  # a valid value would start a run: this test is about the refused ones
    folder = tmp_path_factory.mktemp("values")
    os.environ["OPTLAB_HOME"] = str(folder)
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            try:
                code = main(
                    [
                        "run",
                        "-d",
                        "digits",
                        "-q",
                        CLI_FLAGS[key],
                        repr(value) if isinstance(value, float) else str(value),
                    ]
                )
            except SystemExit as exc:  # argparse refuses a float where an integer is wanted
                code = exc.code
    finally:
        os.environ.pop("OPTLAB_HOME", None)
    text = err.getvalue()
    assert code == 2 and text.startswith("optlab: error: ") and text.count("\n") == 1, (key, value, text)
    assert not (folder / "mlruns").exists()
