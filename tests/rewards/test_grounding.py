import pytest

from vagen.rewards import get_reward
from vagen.rewards.grounding import evidence_seen, frame_set_iou, set_iou, temporal_iou

grounding = get_reward("grounding")


@pytest.mark.parametrize("a, b, iou", [
    ([], [], 0.0),
    ([[0, 4]], [], 0.0),
    ([[0, 2]], [[3, 5]], 0.0),                      # disjoint
    ([[0, 2]], [[2, 5]], 0.0),                      # touching
    ([[0, 10]], [[2, 4]], 0.2),                     # nested
    ([[0, 4]], [[2, 6]], 2 / 6),
    ([[0, 4], [2, 6]], [[0, 6]], 1.0),              # overlaps on one side count once
    ([[0, 2], [4, 6]], [[1, 5]], 2 / 6),            # two pieces against one
    ([[5, 5]], [[5, 5]], 0.0),                      # zero length
    ([[0, 4, 0]], [[0, 4, 1]], 0.0),                # same times, other video
    ([[0, 4]], [[0, 4, 0]], 1.0),                   # no index means video 0
    ([[0, 4, 0], [10, 12, 1]], [[2, 4], [10, 11, 1]], 3 / 6),
])
def test_temporal_iou(a, b, iou):
    assert temporal_iou(a, b) == pytest.approx(iou)
    assert temporal_iou(b, a) == pytest.approx(iou)


def test_temporal_iou_rejects_bad_spans():
    with pytest.raises(ValueError, match=r"span \[3, 1\]"):
        temporal_iou([[3, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="start_s, end_s"):
        temporal_iou([[1]], [[0, 1]])


@pytest.mark.parametrize("a, b, iou", [
    ([], [], 0.0),
    ([1, 2], [], 0.0),
    ([1, 2], [3, 4], 0.0),
    ([1, 2, 3, 4], [2, 3], 0.5),        # nested
    ([1, 2, 3], [2, 3, 4], 0.5),
    ([1, 1, 2], [1, 2], 1.0),           # sets: repeats count once
    ([3], [(0, 3)], 1.0),               # bare index = video 0
    ([(1, 3)], [3], 0.0),               # same index, other video
    ([(0, 3), (1, 3)], [(1, 3), [1, 4]], 1 / 3),
])
def test_frame_set_iou(a, b, iou):
    assert frame_set_iou(a, b) == pytest.approx(iou)


def test_set_iou_of_any_items():
    assert set_iou(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("info, score", [
    (None, 0.0),
    ({"seen_times": [1.0, 2.0]}, 0.0),                                   # no spans
    ({"seen_times": [1.0], "relevant_spans": []}, 0.0),
    ({"seen_times": [], "relevant_spans": [[0, 5]]}, 0.0),              # nothing seen
    ({"seen_times": [0.5, 10.5, 20.5, 30.5], "relevant_spans": [[10, 21]]}, 0.5),
    ({"seen_times": [10.5, 10.5, 0.5], "relevant_spans": [[10, 11]]}, 0.5),   # distinct frames
    ({"seen_times": [2.0, 5.0], "relevant_spans": [[2, 5]]}, 1.0),      # ends are inside
    ({"seen_times": [10.5, 10.5], "seen_video_ids": [0, 1],
      "relevant_spans": [[10, 11, 1]]}, 0.5),                          # multi-video
    ({"seen_times": [1.5, 3.5, 8.5], "relevant_spans": [[0, 2], [3, 4]]}, 2 / 3),
])
def test_grounding_reward(info, score):
    assert grounding("<answer>B</answer>", "B", info) == pytest.approx(score)


def test_grounding_reward_needs_one_video_id_per_time():
    with pytest.raises(ValueError, match="seen_video_ids.*2 entries.*seen_times.*3"):
        grounding("", "", {"seen_times": [1, 2, 3], "seen_video_ids": [0, 1],
                           "relevant_spans": [[0, 1]]})


def test_evidence_is_seen_when_every_span_holds_a_viewed_frame_of_its_video():
    spans = [[10.0, 12.0], [20.0, 21.0, 1]]
    assert evidence_seen([11.5, 20.5], [0, 1], spans)
    assert not evidence_seen([11.5, 20.5], [0, 0], spans)  # 20.5 of the wrong video
    assert not evidence_seen([11.5], None, spans)
    assert evidence_seen([10.0], None, [[10.0, 12.0]])  # ends count as inside
