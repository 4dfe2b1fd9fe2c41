"""The progress display: one display over training and probes, an ETA that starts from the
estimate and follows the measured pace, and plain lines (no carriage returns) off a terminal."""
import io

import numpy as np
import pytest

from mmgain.cli import main
from mmgain.run.progress import Progress, clock_text


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _simulate(train_est, probe_est, train_factor, probe_factor, chunks=4, steps=50, probes=5):
    """A run of ``chunks`` chunks (training then probes in each) whose true times are the
    estimate's times the factors.  Returns [(fraction done, elapsed + eta)] and the final time."""
    clock, out = FakeClock(), io.StringIO()
    p = Progress("run", chunks * steps, train_est, chunks * probes, probe_est, stream=out, clock=clock, tty=False,
                 heartbeat=False)
    seen = []
    for _ in range(chunks):
        p.phase("training")
        for _ in range(steps):
            clock.t += train_est / (chunks * steps) * train_factor
            p.step()
            seen.append((p.fraction, clock.t + p.eta()))
        p.phase("probing")
        for _ in range(probes):
            clock.t += probe_est / (chunks * probes) * probe_factor
            p.probed()
            seen.append((p.fraction, clock.t + p.eta()))
    p.close()
    return seen, clock.t, out.getvalue()


@pytest.mark.parametrize("train_factor,probe_factor", [(1.0, 1.0), (1.8, 0.6), (0.5, 1.9), (0.6, 0.6), (1.9, 1.9)])
def test_the_eta_is_within_2x_of_the_final_time_after_a_tenth_of_the_work(train_factor, probe_factor):
    """The estimate off by up to 2× per phase, in opposite directions too (as measured: training
    close, probes overestimated): after 10 % of the work the predicted total is within 2×."""
    seen, final, _ = _simulate(40.0, 80.0, train_factor, probe_factor)
    late = [total for frac, total in seen if frac >= 0.1]
    assert late and all(final / 2 <= t <= 2 * final for t in late), (min(late), max(late), final)


def test_the_eta_starts_at_the_estimate_and_ends_at_zero():
    clock = FakeClock()
    p = Progress("run", 10, 30.0, 2, 70.0, stream=io.StringIO(), clock=clock, tty=False, heartbeat=False)
    assert p.eta() == pytest.approx(100.0)
    for _ in range(10):
        clock.t += 9.0                    # training 3× slower than estimated
        p.step()
    assert p.fraction == pytest.approx(0.3)
    # training measured at 90 s for 30 estimated: pace ≈ 3; probes not yet measured: the estimate
    assert p.eta() == pytest.approx(70.0, rel=0.01)
    p.probed(2)
    assert p.eta() == 0.0


def test_off_a_terminal_it_writes_plain_lines_at_phase_changes_and_every_n_seconds():
    _, _, text = _simulate(40.0, 80.0, 1.0, 1.0)
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[-1].startswith("run: done in")
    assert sum("training" in x for x in lines) >= 4 and sum("probing" in x for x in lines) >= 4
    assert all(" left" in x for x in lines[:-1])
    # 120 s of work, a line every 30 s plus the phase changes: a handful, not one per step
    assert len(lines) < 30


def test_on_a_terminal_it_rewrites_one_line():
    clock, out = FakeClock(), io.StringIO()
    p = Progress("run", 100, 10.0, 1, 10.0, stream=out, clock=clock, tty=True, heartbeat=False)
    p.phase("training 7 models")
    for _ in range(100):
        clock.t += 0.1
        p.step()
    p.close()
    p.stop()                                     # after the final line: nothing more
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") > 10


def test_clock_text():
    assert clock_text(5) == "0:05" and clock_text(125.4) == "2:05" and clock_text(3725) == "1:02:05"


def _npz(tmp_path, n=120):
    r = np.random.default_rng(0)
    y = r.integers(0, 2, n)
    np.savez(tmp_path / "d.npz", a=r.normal(size=(n, 3)) + y[:, None], b=r.normal(size=(n, 2)), y=y)
    return tmp_path / "d.npz"


def test_a_redirected_run_writes_no_carriage_return_and_names_its_phases(tmp_path, capsys):
    assert main(["run", "--data", str(_npz(tmp_path)), "--seeds", "1", "--ratios", "1", "--cv", "0",
                 "--epochs", "3", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "training 3 models" in err and "probing the latents of 3 models" in err and "done in" in err


def test_quiet_is_silent_about_progress(tmp_path, capsys):
    assert main(["run", "--data", str(_npz(tmp_path)), "--seeds", "1", "--ratios", "1", "--cv", "0",
                 "--epochs", "3", "--quiet", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "training" not in err and "done in" not in err
