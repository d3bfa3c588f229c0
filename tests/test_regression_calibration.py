"""The regression check's calibration, in the suite: it passes on other CPUs' kernels and
fails under every planted bug (tests/calibrate_regression.py; the full table over every
kernel is in the reference file, 'measurements.calibration').

Each variant trains and evaluates the regression recipe in its own process (one to two
minutes each, two at a time)."""
import concurrent.futures
import json
import os

import pytest

import calibrate_regression as cal

pytestmark = pytest.mark.slow


def _reference():
    with open(cal.REFERENCE) as f:
        return json.load(f)


def _other_kernels(n=2):
    """Kernels of other CPUs that this one can run, oldest first (as unlike the running
    kernel as possible)."""
    current = os.environ.get("OPENBLAS_CORETYPE", "").lower()
    return [k for k in cal.runnable_kernels() if k.lower() != current][:n]


MACHINE = _other_kernels() + (["numpy_sse"] if "numpy_sse" in cal.machine_variants() else [])


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """{variant: numbers} for the machine variants above and every planted bug."""
    logs = str(tmp_path_factory.mktemp("calibration_logs"))
    work = str(tmp_path_factory.mktemp("calibration_runs"))
    names = MACHINE + list(cal.BUGS)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(cal.run_variant, n, "./datasets", logs, work)
                   for n in names}
        return {n: f.result() for n, f in futures.items()}


@pytest.mark.skipif(not MACHINE, reason="no other machine variant runs on this CPU")
@pytest.mark.parametrize("name", MACHINE)
def test_check_passes_under_another_machines_arithmetic(variants, name):
    ok, failed = cal.verdict(name, variants[name], _reference())
    assert ok, f"{name}: out of tolerance: {failed}"


@pytest.mark.parametrize("name", list(cal.BUGS))
def test_check_fails_under_every_planted_bug(variants, name):
    ok, failed = cal.verdict(name, variants[name], _reference())
    assert not ok, f"planted bug {name} ({cal.BUGS[name][0]}) went unnoticed"


def test_the_recorded_calibration_covers_the_current_reference():
    """The margins in the reference file were measured on the numbers it holds now: every
    recorded machine variant passes and every recorded bug fails against them."""
    ref = _reference()
    calib = ref["measurements"]["calibration"]["variants"]
    kinds = {s["kind"] for s in calib.values()}
    assert kinds == {"machine", "bug"} and set(cal.BUGS) <= set(calib)
    assert sum(s["kind"] == "machine" for s in calib.values()) >= 5
    for name, s in calib.items():
        values = {m: ref["metrics"][m]["value"] + d for m, d in s["delta"].items()}
        ok, _ = cal.verdict(name, values, ref)
        assert ok == (s["kind"] == "machine"), name


def test_unknown_variant_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        cal.main(["--variants", "Prescott,no_such_bug"])
    assert e.value.code == 2
    assert "no_such_bug" in capsys.readouterr().err
