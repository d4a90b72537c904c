from spinequant.data import sample_stack


def test_sample_stack_has_known_shape_and_spacing():
    stack = sample_stack()
    assert stack.data.shape == (23, 178, 308)
    assert stack.spacing == (0.5, 0.094, 0.094)


def test_subpackages_are_attributes():
    """`import spinequant as sq; sq.data.sample_path()` works without importing the subpackage."""
    import subprocess
    import sys

    code = ("import spinequant as sq; p = sq.data.sample_path(); "
            "assert p.exists() and sq.synth.make_phantom and sq.evaluate; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
