"""The prepared GPU check runs its whole logic (correctness table and timing table) on the CPU in smoke mode."""
import gpu_check


def test_gpu_check_smoke_mode_runs_and_passes(capsys):
    assert gpu_check.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "correctness: OK" in out
    assert "x compiled" in out and "(3, 20, 10)" in out and "5/item" in out
