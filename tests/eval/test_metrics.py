"""Per-episode scores and their summaries, on hand-made episodes and results."""

from __future__ import annotations

import pytest

from vagen.data.sample import Sample
from vagen.eval.metrics import (
    aggregate,
    frame_widths,
    score_episode,
    summarize,
    viewed_spans,
)

COUNT_SAMPLE = Sample(id="count", videos=["v.mp4"], question="How many dots?", answer="3",
                      answer_type="number", relevant_spans=[[10.0, 14.0]], duration_s=60.0)
CHOICE_SAMPLE = Sample(id="colour", videos=["v.mp4"], question="Which colour?", answer="B",
                       options=["red", "blue"])
OPENING = [7.5, 22.5, 37.5, 52.5]  # 4 uniform frames of a 60 s pool at 1 fps
RETRIEVED = [10.5, 11.5, 12.5, 13.5]


def test_a_pool_frame_stands_for_its_bin():
    # 60 s at 1 fps: 60 bins of 1 s; 180 s capped at 64 frames: bins of 180/64 s.
    assert frame_widths([60.0, 180.0], pool_fps=1.0, pool_max_frames=64) == [1.0, 2.8125]
    assert viewed_spans([0.5, 10.5], [0, 1], [1.0, 2.0]) == [[0.0, 1.0, 0], [9.5, 11.5, 1]]
    assert viewed_spans([0.2], None, [1.0]) == [[0.0, 0.7, 0]]  # clipped at the start


def test_score_of_a_retrieve_then_invalid_then_answer_episode():
    infos = [
        {"valid_action": True, "action_type": "retrieve", "turn": 1, "answer": None,
         "frames_seen": 8, "correct": False, "seen_times": OPENING + RETRIEVED},
        {"valid_action": False, "action_type": "invalid", "turn": 2, "answer": None,
         "frames_seen": 8, "correct": False, "seen_times": OPENING + RETRIEVED},
        {"valid_action": True, "action_type": "answer", "turn": 3, "answer": "8",
         "frames_seen": 8, "correct": False, "seen_times": OPENING + RETRIEVED},
    ]
    responses = ["<retrieve>10,13</retrieve>", "hmm", "<answer>8</answer>"]
    score = score_episode(COUNT_SAMPLE, responses, infos, widths=[1.0])
    # Viewed bins cover [10, 14] fully (4 s) plus 4 s elsewhere: IoU 4 / 8.
    # numeric: err 5 -> 0.1 + 0.9 * (1 - (5/25)^2) = 0.964.
    assert score == {"prediction": "8", "correct": False, "numeric_reward": pytest.approx(0.964),
                     "turns": 3, "frames_viewed": 8, "temporal_iou": 0.5,
                     "evidence_seen": True, "invalid_actions": 1}


def test_an_unanswered_number_question_scores_zero_and_choices_have_no_numeric_reward():
    truncated = [{"valid_action": False, "action_type": "invalid", "turn": 1, "answer": None,
                  "frames_seen": 4, "correct": False, "seen_times": OPENING}]
    score = score_episode(COUNT_SAMPLE, ["<answer>3"], truncated, widths=[1.0])
    assert score["prediction"] is None
    assert score["numeric_reward"] == 0.0
    assert score["temporal_iou"] == 0.0  # no viewed bin touches [10, 14]
    assert score["evidence_seen"] is False
    answered = [{"valid_action": True, "action_type": "answer", "turn": 1, "answer": "B",
                 "correct": True, "frames_seen": 4, "seen_times": OPENING}]
    score = score_episode(CHOICE_SAMPLE, ["<answer>B</answer>"], answered, widths=[1.0])
    assert (score["correct"], score["numeric_reward"], score["temporal_iou"]) == (True, None, None)


def test_score_needs_one_info_per_response():
    with pytest.raises(ValueError, match="one info per response"):
        score_episode(CHOICE_SAMPLE, ["a", "b"], [{"valid_action": True}], widths=[1.0])


def test_aggregate_means_skip_missing_values_and_invalid_rate_counts_turns(results):
    assert aggregate(results) == {
        "n": 4, "accuracy": 0.5, "numeric_reward": pytest.approx(0.982),
        "mean_reward": pytest.approx(0.6), "mean_turns": 2.0,
        "frames_viewed": 8.5, "frames_viewed_p90": pytest.approx(11.4),
        "visual_tokens": None, "visual_tokens_p90": None,
        "temporal_iou": 0.25, "invalid_action_rate": 3 / 8,
        "evidence_seen": None}  # results written before the metric existed have none
    assert aggregate([]) == {"n": 0, "accuracy": None, "numeric_reward": None, "mean_reward": None,
                             "mean_turns": None, "frames_viewed": None,
                             "frames_viewed_p90": None, "visual_tokens": None,
                             "visual_tokens_p90": None, "temporal_iou": None,
                             "evidence_seen": None, "invalid_action_rate": None}


def test_summary_breaks_down_by_group_source_category_and_duration_bucket(results):
    summary = summarize(results)
    assert summary["overall"]["n"] == 4
    assert summary["by_source"] == {
        "A": {"n": 2, "accuracy": 0.5, "numeric_reward": 0.964, "mean_reward": pytest.approx(0.6),
              "mean_turns": 2.0,
              "frames_viewed": 10.0, "frames_viewed_p90": pytest.approx(11.6),
              "visual_tokens": None, "visual_tokens_p90": None,
              "temporal_iou": 0.5, "evidence_seen": None,
              "invalid_action_rate": 0.25},
        "B": {"n": 2, "accuracy": 0.5, "numeric_reward": 1.0, "mean_reward": pytest.approx(0.6),
              "mean_turns": 2.0,
              "frames_viewed": 7.0, "frames_viewed_p90": pytest.approx(9.4),
              "visual_tokens": None, "visual_tokens_p90": None,
              "temporal_iou": 0.125, "evidence_seen": None,
              "invalid_action_rate": 0.5}}
    assert {k: v["n"] for k, v in summary["by_category"].items()} == {"A/x": 1, "A/y": 1,
                                                                      "B/x": 2}
    assert {k: v["n"] for k, v in summary["by_group"].items()} == {"multi": 3, "single": 1}
    assert list(summary["by_duration"]) == ["<1 min", "1-3 min", ">10 min", "unknown"]
    assert summary["by_duration"]["1-3 min"]["numeric_reward"] == 0.964


def test_summary_does_not_depend_on_the_order_results_were_written(results):
    assert summarize(results[::-1]) == summarize(results)



def test_the_budget_reports_a_p90_next_to_the_mean(results):
    tokens = [dict(r, visual_tokens=t) for r, t in zip(results, [64, 96, 80, 32], strict=True)]
    overall = aggregate(tokens)
    assert overall["visual_tokens"] == 68.0
    assert overall["visual_tokens_p90"] == pytest.approx(80 + 0.7 * 16)
