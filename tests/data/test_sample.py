import json

import pytest

from vagen.data import Sample, SampleError, load_samples, save_samples
from vagen.data.sample import duration_bucket


def _row(**kw):
    row = {"id": "q1", "videos": ["a.mp4"], "question": "What colour?", "answer": "B",
           "answer_type": "choice", "options": ["red", "blue"], "relevant_spans": [[1.0, 2.5]],
           "duration_s": 30.0, "source": "synthetic", "category": "colour"}
    row.update(kw)
    return row


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip_keeps_every_field(tmp_path, suffix):
    samples = [Sample.from_dict(_row(id=f"q{i}", note="kept")) for i in range(3)]
    path = save_samples(samples, tmp_path / f"s{suffix}")
    loaded = load_samples(path)
    assert [s.to_dict() for s in loaded] == [s.to_dict() for s in samples]
    assert loaded[0].extra == {"note": "kept"}


def test_bad_row_names_file_row_and_field(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(_row()) + "\n" + json.dumps(_row(answer_type="essay")) + "\n")
    with pytest.raises(SampleError, match=r"s\.jsonl: row 1: .*'answer_type'"):
        load_samples(path)


def test_missing_field_is_named(tmp_path):
    row = _row()
    del row["question"]
    path = tmp_path / "s.json"
    path.write_text(json.dumps([row]))
    with pytest.raises(SampleError, match="row 0: missing field 'question'"):
        load_samples(path)


def test_choice_needs_options_and_spans_are_ordered():
    with pytest.raises(SampleError, match="'options'"):
        Sample.from_dict(_row(options=None))
    with pytest.raises(SampleError, match="'relevant_spans'"):
        Sample.from_dict(_row(relevant_spans=[[5.0, 1.0]]))
    assert Sample.from_dict(_row()).choice_letters == ["A", "B"]


@pytest.mark.parametrize(("duration", "bucket"), [
    (0.0, "<1 min"), (59.9, "<1 min"), (60.0, "1-3 min"), (179.9, "1-3 min"),
    (180.0, "3-10 min"), (599.0, "3-10 min"), (600.0, ">10 min"), (7200.0, ">10 min"),
    (None, "unknown")])
def test_duration_buckets_split_at_1_3_and_10_minutes(duration, bucket):
    assert duration_bucket(duration) == bucket
