"""edge.progress: the one path every long stage reports through (bars on a terminal, lines elsewhere)."""
from edge.progress import Progress, _stdout_line, as_progress


def test_lines_come_about_every_tenth_and_at_the_end():
    lines = []
    with as_progress(lines.append).bar(25, "images") as step:
        for _ in range(25):
            step()
    assert lines == [f"  images: {n}/25" for n in (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25)]


def test_a_custom_line_and_step_info_and_early_stop():
    lines = []
    with as_progress(lines.append).bar(6, "epochs", every=1, line=lambda d, t, i: f"epoch {d}/{t} loss {i['loss']}") as step:
        step(loss=0.5)
        step(loss=0.25)  # early stopping: the bar ends before its total
    assert lines == ["epoch 1/6 loss 0.5", "epoch 2/6 loss 0.25"]


def test_silent_and_callable_and_true():
    p = as_progress(False)
    assert not p and as_progress(None).__bool__() is False
    p("nothing")  # a silent Progress swallows lines
    with p.bar(10, "x") as step:
        step(3)
    seen = []
    q = as_progress(seen.append)
    q("hello")
    assert seen == ["hello"] and as_progress(q) is q
    assert as_progress(True)._sink is _stdout_line


def test_a_terminal_gets_a_tqdm_bar_on_stderr_and_one_line_after(capsys):
    p = Progress(_stdout_line, tty=True)
    with p.bar(4, "calibration images") as step:
        for _ in range(4):
            step(loss=0.1)
    out, err = capsys.readouterr()
    assert "calibration images" in err and "it/s" in err and "/4 [" in err  # drawn by tqdm (rate, ETA) on stderr
    assert out.startswith("  calibration images: 4/4 in ") and out.count("\n") == 1


def test_a_caller_collecting_lines_never_gets_a_bar(capsys):
    lines = []
    with Progress(lines.append, tty=True).bar(2, "x") as step:
        step()
        step()
    assert lines == ["  x: 1/2", "  x: 2/2"] and capsys.readouterr().err == ""
