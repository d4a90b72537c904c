"""spinequant.edit: corrections of spine labels, and a session whose tables stay what the
API measures for the same labels."""

import json

import numpy as np
import pandas as pd
import pytest

import spinequant as sq
from spinequant.data import sample_stack
from spinequant.edit import (EditSession, add_spine, delete_spines, merge_spines, split_spine_by_line,
                             split_spine_by_seeds)
from spinequant.errors import InputError
from spinequant.morphology import dendrite_skeleton

SPACING = (0.5, 0.1, 0.1)


def dumbbell():
    """Two round heads (radius 4 voxels) joined by a 1-voxel bridge, one spine id 7."""
    labels = np.zeros((3, 20, 30), np.int32)
    _, y, x = np.mgrid[:3, :20, :30]
    labels[((y - 10) ** 2 + (x - 7) ** 2 <= 16) | ((y - 10) ** 2 + (x - 21) ** 2 <= 16)] = 7
    labels[:, 10, 7:22] = 7
    return labels


def test_delete_and_merge_keep_other_spines():
    labels = np.zeros((1, 5, 12), np.int32)
    labels[0, 2, 1:3], labels[0, 2, 5:7], labels[0, 2, 9:11] = 1, 2, 3
    assert np.unique(delete_spines(labels, [2])).tolist() == [0, 1, 3]
    merged = merge_spines(labels, [3, 2])
    assert merged[0, 2, 5] == 2 and merged[0, 2, 9] == 2 and merged[0, 2, 1] == 1
    with pytest.raises(InputError, match="No spine with id 9"):
        delete_spines(labels, [9])
    with pytest.raises(InputError, match="at least two"):
        merge_spines(labels, [1])


def test_split_by_seeds_cuts_at_the_bridge():
    labels = dumbbell()
    out = split_spine_by_seeds(labels, 7, [(1, 10, 5), (1, 10, 23)], SPACING)
    assert sorted(np.unique(out).tolist()) == [0, 7, 8]
    assert (out[:, :, :12] != 8).all() and (out[:, :, 17:] != 7).all()   # the cut lies on the bridge
    assert ((out > 0) == (labels > 0)).all()
    with pytest.raises(InputError, match="do not lie in spine 7"):
        split_spine_by_seeds(labels, 7, [(1, 10, 5), (1, 0, 0)], SPACING)


def test_split_by_line_and_a_line_that_misses():
    labels = dumbbell()
    out = split_spine_by_line(labels, 7, (1, 0, 14), (1, 19, 14))
    assert sorted(np.unique(out).tolist()) == [0, 7, 8]
    assert ((out > 0) == (labels > 0)).all()
    assert len(np.unique(out[:, :, :14])) == 2 and len(np.unique(out[:, :, 15:])) == 2
    with pytest.raises(InputError, match="does not cut"):
        split_spine_by_line(labels, 7, (1, 0, 2), (1, 5, 2))


def test_add_grows_in_the_map_and_stays_out_of_dendrite():
    labels = np.zeros((3, 20, 20), np.int32)
    values = np.zeros(labels.shape)
    values[:, 5:9, 5:9] = 1.0          # a blob
    values[:, 7:9, 9:12] = 0.3         # its faint skirt: below half of the click's value
    dend = np.zeros(labels.shape, int)
    dend[:, 5, 5:9] = 1
    out = add_spine(labels, (1, 6, 6), values, SPACING, dendrite_labels=dend)
    assert out.max() == 1 and ((out == 1) == ((values == 1.0) & (dend == 0))).all()
    with pytest.raises(InputError, match="lies in spine 1"):
        add_spine(out, (1, 6, 6), values, SPACING)
    with pytest.raises(InputError, match="nothing to grow"):
        add_spine(labels, (1, 15, 15), values, SPACING)


@pytest.fixture(scope="module")
def sample_result():
    return sq.analyze(sample_stack())


def api_table(result, labels):
    skeleton = dendrite_skeleton(result.dendrite_labels, result.spacing, config=result.config.morphology)
    return sq.measure_spines(labels, result.dendrite_labels, result.spacing, image=result.image,
                             config=result.config.morphology, skeleton=skeleton)


def test_session_edits_undo_and_save_equal_the_api(sample_result, tmp_path):
    r = sample_result
    s = EditSession.from_result(r)
    n = len(s.spines)
    assert s.delete([1]) == [1] and len(s.spines) == n - 1
    s.merge([2, 3])
    assert len(s.spines) == n - 2 and 3 not in set(s.spines["id"])
    vox = np.argwhere(s.spine_labels == 4)
    new = s.split_seeds(4, [vox[vox[:, 1].argmin()], vox[vox[:, 1].argmax()]])
    assert len(new) == 2 and len(s.spines) == n - 1
    conf = s.spines.set_index("id")["confidence"]
    assert conf[new[1]] == conf[4]                       # a split piece keeps its spine's confidence
    s.set_type([5], "stubby")
    row = s.spines.set_index("id").loc[5]
    assert row["type"] == "stubby" and row["type_rule"] == "set by hand"
    # A click in the spine map away from every spine and the dendrite grows a new spine.
    free = (s.spine_labels == 0) & (r.dendrite_labels == 0) & (r.spine_prob > 0.5)
    point = np.argwhere(free)[0]
    added = s.add(point)
    assert added == [int(s.spine_labels.max())] and np.isnan(s.spines.set_index("id").loc[added[0], "confidence"])
    # The table is what the API measures for the same labels (types set by hand aside).
    mine = s.spines.drop(columns="confidence").reset_index(drop=True)
    api = api_table(r, s.spine_labels)
    api.loc[api["id"] == 5, ["type", "type_rule"]] = ["stubby", "set by hand"]
    pd.testing.assert_frame_equal(mine, api)
    assert s.dendrites["n_spines"].sum() == len(s.spines)
    # Undo walks back to the analysis.
    for expected in ("add", "set type", "split", "merge", "delete"):
        assert s.undo() == expected
    assert s.undo() is None
    assert (s.spine_labels == r.spine_labels).all()
    pd.testing.assert_frame_equal(s.spines, r.spines)
    s.delete([6])
    out = s.save(tmp_path / "edited")
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and run["edited"]["edited"] and run["edited"]["edits"][0]["edit"] == "delete"
    saved = pd.read_csv(out / "spines.csv")
    assert len(saved) == n - 1 and 6 not in set(saved["id"])
    np.testing.assert_allclose(saved["volume_um3"], api_table(r, s.spine_labels)["volume_um3"])


def test_reattach_places_spine_on_the_chosen_dendrite(sample_result):
    s = EditSession.from_result(sample_result)
    with pytest.raises(InputError, match="No dendrite 99"):
        s.reattach([1], 99)
    did = int(s.dendrites["dendrite_id"].iloc[0])
    s.reattach([1], did)
    assert int(s.spines.set_index("id").loc[1, "dendrite_id"]) == did
    assert s.log[-1]["edit"] == "reattach"
