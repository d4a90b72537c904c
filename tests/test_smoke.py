from spinequant.data import sample_stack


def test_sample_stack_has_known_shape_and_spacing():
    stack = sample_stack()
    assert stack.data.shape == (23, 178, 308)
    assert stack.spacing == (0.5, 0.094, 0.094)
