"""The suite's order: its longest modules first.

`make test` shares the modules between two processes (pytest-xdist, ``--dist loadscope``),
which hands them out in the order they are collected. Started last, the block-wise modules
(a third of the suite's time) would leave one process running them alone at the end; started
first, the many short modules fill the other process meanwhile. The order is measured (one
process, ``--durations``, 2026-12-07: test_scale 305 s, test_scale_tiles 175 s,
test_scale_dask 82 s, test_cell_bodies 80 s of the suite's 1,215 s); it changes only when
the tests run, never what they check.
"""

LONGEST_FIRST = ("test_scale.py", "test_scale_tiles.py", "test_scale_dask.py", "test_cell_bodies.py",
                 "test_timelapse_movie.py", "test_track_sessions.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))    # stable: the rest keep their order
