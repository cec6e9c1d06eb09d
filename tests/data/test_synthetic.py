"""The synthetic data set: what a question asks is really drawn in the decoded video, at the
annotated times, and the answerable shares follow from the annotations."""

import math
from pathlib import Path

import av
import numpy as np
import pytest

from vagen.data import Sample, load_samples
from vagen.data.synthetic import (
    KINDS,
    SAMPLES_FILE,
    SynthConfig,
    generate_dataset,
    main,
    sees_evidence,
    span_view,
    summarize,
    uniform_view,
)
from vagen.video.sampling import pool_times
from vagen.video.synthetic_render import PALETTE, VideoPlan, mark_mask

SMALL = dict(min_duration_s=24, max_duration_s=30, min_carrier_s=8, max_carrier_s=12,
             max_videos=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One sample of every kind (the kinds are used in turn)."""
    out = tmp_path_factory.mktemp("synth")
    samples = generate_dataset(out, n=len(KINDS), seed=7, config=SynthConfig(**SMALL))
    return out, samples


def _plans(sample: Sample) -> list[VideoPlan]:
    return [VideoPlan.from_dict(p) for p in sample.extra["plans"]]


def _decode(path: Path) -> tuple[list[float], np.ndarray]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.time for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames])


def _colour_at(pixel: np.ndarray) -> str:
    names = ["background", *PALETTE]
    refs = np.array([(70, 70, 70), *PALETTE.values()], dtype=float)
    best = int(np.abs(refs - pixel).max(axis=1).argmin())
    assert np.abs(refs[best] - pixel).max() <= 30, f"pixel {pixel} is no palette colour"
    return names[best]


def _same_video(a: Path, b: Path) -> bool:
    """Same frame times and pixels. Not the same bytes: libx264 (PyAV 18) can write another,
    equally decoded, bitstream for the same frames in a process that has loaded torch."""
    (times_a, frames_a), (times_b, frames_b) = _decode(a), _decode(b)
    return times_a == times_b and np.array_equal(frames_a, frames_b)


def test_same_seed_gives_same_samples_and_video_frames(dataset, tmp_path):
    out, samples = dataset
    again = generate_dataset(tmp_path, n=len(KINDS), seed=7, config=SynthConfig(**SMALL))
    assert [s.to_dict() for s in again] == [s.to_dict() for s in samples]
    for sample in samples:
        for video in sample.videos:
            assert _same_video(tmp_path / video, out / video), video
    other = generate_dataset(tmp_path / "other", n=2, seed=8, config=SynthConfig(**SMALL))
    assert [s.question for s in other] != [s.question for s in samples[:2]]


def test_samples_file_round_trips_with_relative_video_paths(dataset):
    out, samples = dataset
    loaded = load_samples(out / SAMPLES_FILE)
    assert [s.to_dict() for s in loaded] == [s.to_dict() for s in samples]
    for sample in loaded:
        assert all(not Path(v).is_absolute() and (out / v).is_file() for v in sample.videos)


def test_every_kind_asks_what_the_plan_draws(dataset):
    _, samples = dataset
    assert [s.extra["kind"] for s in samples] == list(KINDS)
    by_kind = {s.extra["kind"]: s for s in samples}
    for sample in samples:
        for plan in _plans(sample):
            carrier = plan.tracks[0]
            assert 8 <= carrier.end_s - carrier.start_s <= 12
            for d in carrier.details:
                assert 1 <= d.end_s - d.start_s <= 3
                assert carrier.start_s + 1 <= d.start_s and d.end_s <= carrier.end_s - 1
            assert all(t.shape != carrier.shape for t in plan.tracks[1:])

    color = by_kind["color"]
    detail = _plans(color)[0].tracks[0].details[0]
    assert color.options[ord(color.answer) - ord("A")] == detail.color
    assert sorted(color.options + [_plans(color)[0].tracks[0].color]) == sorted(PALETTE)
    assert color.relevant_spans == [[detail.start_s, detail.end_s]]

    order = by_kind["order"]
    first = _plans(order)[0].tracks[0].details[0]
    picked = order.options[ord(order.answer) - ord("A")]
    assert len(order.options) == 2 and first.color in picked
    assert ("turned" in picked) == (first.kind == "turn")

    count = by_kind["count"]
    details = _plans(count)[0].tracks[0].details
    assert count.answer_type == "number" and count.answer == str(len(details))
    assert count.relevant_spans == [[d.start_s, d.end_s] for d in details]

    when = by_kind["when"]
    start = _plans(when)[0].tracks[0].details[0].start_s
    assert when.answer == str(math.floor(start + 0.5))


def test_multi_video_questions_point_at_the_right_videos(dataset):
    out, samples = dataset
    by_kind = {s.extra["kind"]: s for s in samples}
    which = by_kind["which_video"]
    plans = _plans(which)
    target = ord(which.answer) - ord("A")
    asked = which.question.rstrip("?").split()[-1]
    assert which.options == [f"video {v + 1}" for v in range(len(plans))]
    assert [plan.tracks[0].details[0].color == asked for plan in plans] == [
        v == target for v in range(len(plans))]
    assert [span[2] for span in which.relevant_spans] == [target]

    count = by_kind["video_count"]
    plans = _plans(count)
    asked = count.question.rstrip("?").split()[-1]
    assert count.answer == str(sum(p.tracks[0].details[0].color == asked for p in plans))
    assert [span[2] for span in count.relevant_spans] == list(range(len(plans)))
    for sample in (which, count):
        assert 2 <= len(sample.videos) <= 3 and len(set(sample.videos)) == len(sample.videos)
        assert sample.duration_s == sum(p.duration_s for p in _plans(sample))
        assert all((out / v).is_file() for v in sample.videos)


def test_videos_decode_with_their_duration(dataset):
    out, samples = dataset
    for sample in samples:
        for video, plan in zip(sample.videos, _plans(sample), strict=True):
            times, frames = _decode(out / video)
            assert frames.shape == (plan.duration_s * plan.fps, 64, 64, 3)
            assert times[-1] == pytest.approx(plan.duration_s - 1 / plan.fps)


def test_detail_is_drawn_exactly_at_pool_frames_inside_its_span(dataset):
    """At every default pool frame on a carrier, whichever way a decoder rounds time to a
    frame, the centre shows a detail's colour iff the time lies in the detail's span (the
    relevant span, for the videos a question is about)."""
    out, samples = dataset
    checked_inside = 0
    for sample in samples:
        for v, (video, plan) in enumerate(zip(sample.videos, _plans(sample), strict=True)):
            carrier = plan.tracks[0]
            spans = [[d.start_s, d.end_s] for d in carrier.details]
            annotated = [s[:2] for s in sample.relevant_spans if (s[2:] or [0])[0] == v]
            assert annotated in ([], spans)
            _, frames = _decode(out / video)
            ys, xs = np.nonzero(mark_mask(carrier.shape, plan.size))
            y, x = int(ys.mean()), int(xs.mean())
            pool = pool_times(plan.duration_s)
            for t in pool[(pool >= carrier.start_s) & (pool <= carrier.end_s - 1 / plan.fps)]:
                hits = [d.color for d, (s, e) in zip(carrier.details, spans, strict=True)
                        if s <= t <= e]
                expected = hits[0] if hits else carrier.color
                checked_inside += len(hits) if annotated else 0
                for index in {math.floor(t * plan.fps), math.ceil(t * plan.fps)}:
                    assert _colour_at(frames[index, y, x]) == expected, (sample.id, t, index)
    assert checked_inside >= sum(len(s.relevant_spans) for s in samples)


def test_default_config_spans_cover_a_pool_frame_with_clearance():
    cfg = SynthConfig()
    for kind, spec in KINDS.items():
        for i in range(40):
            question = spec.build(np.random.default_rng([0, i]), cfg)
            for span in question.relevant_spans:
                plan = question.plans[int(span[2]) if len(span) > 2 else 0]
                assert 30 <= plan.duration_s <= 180
                pool = pool_times(plan.duration_s)
                inside = pool[(pool >= span[0]) & (pool <= span[1])]
                assert len(inside) >= 1, (kind, i, span)
                assert inside.max() <= span[1] - 1 / cfg.fps + 1e-9
                before = pool[pool < span[0]]
                assert not len(before) or before.max() <= span[0] - 1 / cfg.fps + 1e-9


def _sample(kind: str, spans: list[list[float]], carrier: list[list[float]],
            durations: list[float]) -> Sample:
    return Sample(id=f"{kind}{spans}", videos=["v.mp4"] * len(durations), question="q?",
                  answer="1", answer_type="number", relevant_spans=spans,
                  extra={"kind": kind, "carrier_spans": carrier, "durations_s": durations})


def test_answerable_shares_on_a_hand_built_case():
    # 64 s video: pool at 0.5, 1.5, ..., 63.5; 16 uniform frames at 2.5, 6.5, 10.5, 14.5, ...;
    # 8 uniform frames at 4.5, 12.5, 20.5, 28.5, ...
    # The carrier [8, 20] holds pool 8.5..19.5 (12 frames); 8 of them at 8.5, 10.5, 11.5,
    # 13.5, 14.5, 16.5, 17.5, 19.5.
    carrier = [[8.0, 20.0]]
    samples = [
        _sample("color", [[12.0, 13.9]], carrier, [64]),  # pool 12.5, 13.5
        _sample("color", [[10.2, 10.8]], carrier, [64]),  # pool 10.5
        _sample("count", [[30.2, 30.8], [31.2, 31.8]], [[26.0, 36.0]], [64]),  # no frame between
        _sample("count", [[30.2, 30.8], [32.2, 32.8]], [[26.0, 36.0]], [64]),  # 31.5 between
        _sample("color", [[12.0, 13.9, 1]], [[8.0, 20.0, 1]], [64, 64]),  # 8 uniform per video
    ]
    summary = summarize(samples)
    assert summary["answerable"] == {"uniform_8": 0.2, "uniform_16": 0.4, "carrier_8": 0.8,
                                     "oracle_8": 0.8, "carrier_seen": 1.0}
    assert summary["answerable_by_kind"]["count"]["oracle_8"] == 0.5
    assert summary["ceiling"] == {"uniform_8": 0.2, "uniform_16": 0.4}  # numbers: no guess
    assert summary["kinds"] == {"color": 3, "count": 2}
    assert summary["duration_s"] == {"min": 64.0, "mean": 64.0, "max": 64.0}
    views = uniform_view([64, 64], 16)
    assert [list(v) for v in views] == [[4.5 + 8 * i for i in range(8)]] * 2
    assert list(span_view([64], [[30.2, 30.8], [32.2, 32.8]], 8)[0]) == [30.5, 31.5, 32.5]
    assert not sees_evidence(samples[2], [np.array([30.5, 31.5])])
    assert sees_evidence(samples[3], [np.array([30.5, 31.5, 32.5])])


def test_main_writes_n_samples_and_prints_the_summary(tmp_path, capsys):
    rc = main(["--out", str(tmp_path), "--n", "3", "--seed", "1", "--kinds", "color",
               "--min-duration-s", "24", "--max-duration-s", "26", "--max-carrier-s", "10",
               "--distractors", "0", "--absolute-paths"])
    assert rc == 0
    samples = load_samples(tmp_path / SAMPLES_FILE)
    assert len(samples) == 3 and {s.extra["kind"] for s in samples} == {"color"}
    assert all(24 <= s.duration_s <= 26 for s in samples)
    assert all(len(plan["tracks"]) == 1 for s in samples for plan in s.extra["plans"])
    assert all(Path(v).is_absolute() and Path(v).is_file() for s in samples for v in s.videos)
    out = capsys.readouterr().out
    assert "oracle_8" in out and "uniform_16" in out
    assert out.splitlines()[-5].split()[:2] == ["all", "3"]
    assert "single-turn accuracy ceiling" in out


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n and --workers must be >= 1"),
    (["--workers", "0"], "--n and --workers must be >= 1"),
    (["--kinds", "colour"], "kinds: unknown ['colour']; use some of color, order"),
    (["--size", "63"], "size: 63 must be even"),
    (["--min-duration-s", "10"], "min_duration_s"),
])
def test_main_rejects_bad_arguments(tmp_path, capsys, argv, message):
    assert main(["--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / SAMPLES_FILE).exists()


def test_the_single_turn_ceiling_adds_a_guess_among_the_options():
    seen = _sample("color", [[12.0, 13.9]], [[8.0, 20.0]], [64])  # 16 uniform see 12.5
    unseen = _sample("color", [[10.2, 10.8]], [[8.0, 20.0]], [64])  # none see 10.5
    for sample in (seen, unseen):
        sample.options, sample.answer, sample.answer_type = ["a", "b", "c", "d"], "A", "choice"
    assert summarize([seen, unseen])["ceiling"]["uniform_16"] == (1 + 0.25) / 2


def test_workers_write_the_same_data_set(dataset, tmp_path):
    _, samples = dataset
    parallel = generate_dataset(tmp_path, n=len(KINDS), seed=7, config=SynthConfig(**SMALL),
                                workers=2)
    assert [s.to_dict() for s in parallel] == [s.to_dict() for s in samples]
    first = samples[0].videos[0]
    assert _same_video(tmp_path / first, dataset[0] / first)


def test_brief_evidence_names_the_colours_a_tiny_model_can_copy(dataset):
    _, samples = dataset
    color = next(s for s in samples if s.extra["kind"] == "color")
    carrier = color.extra["plans"][0]["tracks"][0]
    assert color.extra["evidence_brief"] == (f"{carrier['color']} "
                                             f"{carrier['details'][0]['color']}")
    assert color.options[ord(color.answer) - ord("A")] == carrier["details"][0]["color"]
