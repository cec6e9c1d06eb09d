"""`vagen data convert`: each format on its fixture (tests/fixtures/<format>/) with exact
Sample values, the errors a user sees for bad rows and missing videos, the CLI, and an
optional run on real benchmark subsets in the folder $VAGEN_BENCHMARK_SAMPLES names."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vagen import cli
from vagen.data import Sample, SampleError, load_samples
from vagen.data.convert import (
    Converter,
    ConvertOptions,
    convert,
    get_converter,
    list_converters,
    main,
    register_converter,
)
from vagen.data.parse import choice_answer, is_number, split_inline_options

FIXTURES = Path(__file__).parents[1] / "fixtures"
SHARED = Path(os.environ.get("VAGEN_BENCHMARK_SAMPLES", "/nonexistent"))
FORMATS = ["egoschema", "llava_json", "longvideobench", "lvbench", "mlvu", "nextgqa", "nextqa",
           "verltool", "videomme", "videomtr"]


def _touch(root: Path, *names: str) -> None:
    """Empty placeholder videos: the converters only check that the files exist."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()


def _convert(fmt, path, root, **options):
    return convert(fmt, path, ConvertOptions(video_root=str(root), **options))


def _to_parquet(json_rows: list[dict], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(json_rows), path)
    return path


# ---------------------------------------------------------------- registry


def test_registry_lists_every_format_and_rejects_unknown_and_duplicate_names():
    assert list_converters() == FORMATS
    with pytest.raises(KeyError, match="unknown format 'nextqa2'; registered: egoschema, "):
        get_converter("nextqa2")
    with pytest.raises(ValueError, match="'nextqa' is already registered"):
        register_converter("nextqa")(Converter)


# ---------------------------------------------------------------- each format


def test_nextqa_maps_video_ids_to_folders_and_answer_index_to_letter(tmp_path):
    _touch(tmp_path, "0001/1000000001.mp4", "0002/1000000002.mp4")
    samples = _convert("nextqa", FIXTURES / "nextqa/val.csv", tmp_path).samples
    assert samples[0] == Sample(
        id="1000000001_0", videos=[str(tmp_path / "0001/1000000001.mp4")],
        question="what does the dog do after jumping off the sofa", answer="C",
        options=["sleeps", "barks at the door", "runs to the ball", "sits down", "eats"],
        source="nextqa", category="TN", extra={"frame_count": 300, "width": 320, "height": 240})
    assert [(s.id, s.answer, s.category) for s in samples[1:]] == [
        ("1000000002_3", "A", "CW"), ("1000000002_5", "E", "DC")]
    assert samples[2].videos == [str(tmp_path / "0002/1000000002.mp4")]


def test_nextqa_durations_come_from_the_videos_when_they_are_there(tmp_path, capsys):
    """NExT-QA's CSV has none: a readable video gives its duration (probed once for its two
    questions), a placeholder gives none, and the CLI says how many still lack one."""
    from vagen.data.convert import main
    from vagen.testing import make_test_video

    make_test_video(tmp_path / "0002/1000000002.mp4", duration_s=5.0, fps=4.0, size=(32, 32))
    _touch(tmp_path, "0001/1000000001.mp4")  # 0 bytes: unreadable
    samples = _convert("nextqa", FIXTURES / "nextqa/val.csv", tmp_path).samples
    assert [s.duration_s for s in samples] == [None, pytest.approx(5.0), pytest.approx(5.0)]
    assert main(["--from", "nextqa", str(FIXTURES / "nextqa/val.csv"),
                 str(tmp_path / "out.jsonl"), "--video-root", str(tmp_path)]) == 0
    assert "1 samples have no duration_s" in capsys.readouterr().out


def test_nextqa_default_video_root_is_the_csv_folder():
    result = convert("nextqa", FIXTURES / "nextqa/val.csv", ConvertOptions(check_videos=False))
    assert result.samples[0].videos == [str(FIXTURES / "nextqa/0001/1000000001.mp4")]


def test_nextgqa_joins_spans_and_duration_and_maps_answer_text(tmp_path):
    # No map_vid_vidorID.json next to this CSV: videos are <video_id>.mp4 under the root.
    _touch(tmp_path, "2000000001.mp4", "2000000002.mp4")
    samples = _convert("nextgqa", FIXTURES / "nextgqa/test.csv", tmp_path).samples
    assert samples[0] == Sample(
        id="2000000001_1", videos=[str(tmp_path / "2000000001.mp4")],
        question="what did the man do before opening the door", answer="B",
        options=["wave", "knock", "sit down", "run away", "sing"], relevant_spans=[[2.0, 4.5]],
        duration_s=20.0, source="nextgqa", category="TP",
        extra={"frame_count": 600, "width": 640, "height": 480, "fps": 30.0})
    assert [(s.id, s.answer, s.relevant_spans, s.duration_s) for s in samples[1:]] == [
        ("2000000001_4", "A", [[10.0, 12.0], [15.5, 18.0]], 20.0),
        ("2000000002_0", "B", [[0.0, 3.2]], 10.0)]


def test_nextgqa_needs_its_span_file_and_a_span_per_question(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_text((FIXTURES / "nextgqa/test.csv").read_text())
    with pytest.raises(FileNotFoundError, match="gsub_val.json not found next to val.csv"):
        _convert("nextgqa", csv, tmp_path, check_videos=False)
    (tmp_path / "gsub_val.json").write_text(json.dumps(
        {"2000000001": {"duration": 20, "fps": 30, "location": {"1": [[2.0, 4.5]]}}}))
    with pytest.raises(SampleError, match=r"val.csv: line 3: field 'location': gsub_val.json "
                                          r"has no span for video 2000000001 qid 4"):
        _convert("nextgqa", csv, tmp_path, check_videos=False)


@pytest.mark.parametrize("layout", ["parquet", "grouped"])
def test_videomme_strips_option_letters_and_names_files_by_youtube_id(tmp_path, layout):
    if layout == "parquet":
        rows = [json.loads(line) for line in (FIXTURES / "videomme/test.jsonl").open()]
        path = _to_parquet(rows, tmp_path / "test-00000-of-00001.parquet")
        _touch(tmp_path, "data/AAAAAAAAAA1.mp4", "data/BBBBBBBBBB2.mp4")
        samples = _convert("videomme", path, tmp_path / "data").samples
        assert samples[0] == Sample(
            id="001-1", videos=[str(tmp_path / "data/AAAAAAAAAA1.mp4")],
            question="How many planets are shown at the start?", answer="C",
            options=["3.", "5.", "8.", "9."], source="videomme", category="Counting Problem",
            extra={"video_id": "001", "duration_group": "short", "domain": "Knowledge",
                   "sub_category": "Astronomy"})
        assert [(s.id, s.answer, s.extra["duration_group"]) for s in samples[1:]] == [
            ("001-2", "A", "short"), ("002-1", "D", "long")]
    else:
        _touch(tmp_path, "CCCCCCCCCC3.mp4")
        samples = _convert("videomme", FIXTURES / "videomme/grouped.json", tmp_path).samples
        assert [(s.id, s.answer, s.category, s.extra["duration_group"]) for s in samples] == [
            ("003-1", "B", "Object Recognition", "medium"),
            ("003-2", "B", "OCR Problems", "medium")]
        assert samples[1].options == ["Stop.", "Slow.", "Exit.", "Yield."]
        assert samples[1].videos == [str(tmp_path / "CCCCCCCCCC3.mp4")]


def test_mlvu_reads_every_task_file_of_a_folder(tmp_path):
    _touch(tmp_path, "1_plotQA/movie_1.mp4", "1_plotQA/movie_2.mp4", "4_count/count_1.mp4",
           "8_sub_scene/subPlot_1.mp4")
    samples = _convert("mlvu", FIXTURES / "mlvu/json", tmp_path).samples
    assert samples[0] == Sample(
        id="1_plotQA_0", videos=[str(tmp_path / "1_plotQA/movie_1.mp4")],
        question="Why does the woman leave the party early?", answer="B",
        options=["She is tired", "Her phone rings", "It starts snowing", "She forgot her keys"],
        duration_s=600.0, source="mlvu", category="plotQA", extra={"task": "1_plotQA"})
    assert [(s.id, s.answer, s.answer_type, s.duration_s) for s in samples[1:3]] == [
        ("1_plotQA_1", "D", "choice", 420.0), ("4_count_0", "C", "choice", 312.5)]
    assert samples[3] == Sample(
        id="8_sub_scene_0", videos=[str(tmp_path / "8_sub_scene/subPlot_1.mp4")],
        question="Please describe the scene where the train arrives.",
        answer="The train pulls in slowly and a man in a hat steps off carrying a red suitcase.",
        answer_type="text", duration_s=905.25, source="mlvu", category="subPlot",
        extra={"task": "8_sub_scene", "scoring_points": [
            "The train pulls in slowly", "a man in a hat steps off", "carrying a red suitcase"]})


def test_mlvu_single_task_file(tmp_path):
    samples = _convert("mlvu", FIXTURES / "mlvu/json/4_count.json", tmp_path,
                       check_videos=False).samples
    assert [(s.id, s.options, s.answer) for s in samples] == [
        ("4_count_0", ["2", "4", "3", "6"], "C")]


def test_longvideobench_keeps_categories_and_duration(tmp_path):
    _touch(tmp_path, "videos/vidAAAA0001.mp4", "videos/vidBBBB0002.mp4")
    samples = _convert("longvideobench", FIXTURES / "longvideobench/lvb_val.json",
                       tmp_path).samples
    assert samples[0] == Sample(
        id="vidAAAA0001_0", videos=[str(tmp_path / "videos/vidAAAA0001.mp4")],
        question="After the chef puts the pan on the stove, what does she add first?",
        answer="B", options=["Salt", "Oil", "Butter", "Water"], duration_s=512.4,
        source="longvideobench", category="E2O",
        extra={"video_id": "vidAAAA0001", "duration_group": 600, "topic_category": "CK-Cooking",
               "level": "L1-Perception", "position": [1200, 1260], "type": "local",
               "question_wo_referring_query": "What does she add first?",
               "subtitle_path": "vidAAAA0001_en.json", "starting_timestamp_for_subtitles": 0})
    assert (samples[1].answer, samples[1].category, samples[1].duration_s) == ("E", "O3O", 48.0)
    assert "type" not in samples[1].extra


def test_answer_hidden_test_rows_are_kept_with_empty_answer_or_dropped(tmp_path):
    path = FIXTURES / "longvideobench/lvb_test_wo_gt.json"
    kept = _convert("longvideobench", path, tmp_path, check_videos=False)
    assert [(s.id, s.answer) for s in kept.samples] == [("vidCCCC0003_0", "")]
    assert kept.unanswered == 1
    dropped = _convert("longvideobench", path, tmp_path, check_videos=False, answered_only=True)
    assert dropped.samples == [] and dropped.skipped == {"no public answer": 1}


def test_lvbench_splits_inline_options_and_parses_time_reference(tmp_path):
    _touch(tmp_path, "KeyAAAA0001.mp4", "KeyBBBB0002.mp4")
    samples = _convert("lvbench", FIXTURES / "lvbench/video_info.meta.jsonl", tmp_path).samples
    assert samples[0] == Sample(
        id="101", videos=[str(tmp_path / "KeyAAAA0001.mp4")],
        question="What year is written on the first title card?", answer="B",
        options=["1901", "1910", "1919", "1991"], relevant_spans=[[15.0, 19.0]],
        duration_s=3750.0, source="lvbench", category="key information retrieval",
        extra={"video_key": "KeyAAAA0001", "genre": "documentary",
               "question_type": ["key information retrieval"], "time_reference": "00:15-00:19"})
    assert [(s.id, s.answer, s.relevant_spans, s.category) for s in samples[1:]] == [
        ("102", "D", None, "reasoning"),
        ("103", "C", [[3723.0, 3750.0]], "entity recognition")]
    assert samples[2].duration_s == 4500.0


def test_egoschema_joins_public_answers_and_ego4d_clip_spans(tmp_path):
    uids = [f"aaaa000{i}-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)]
    _touch(tmp_path, *[f"{uid}.mp4" for uid in uids])
    result = _convert("egoschema", FIXTURES / "egoschema/questions.json", tmp_path)
    assert result.samples[0] == Sample(
        id=uids[0], videos=[str(tmp_path / f"{uids[0]}.mp4")],
        question="What is c mainly doing in the video?", answer="B",
        options=["C is cooking dinner", "C is repairing a bike", "C is painting a wall",
                 "C is reading a book", "C is washing dishes"],
        duration_s=180.0, source="egoschema",
        extra={"google_drive_id": "driveid0001",
               "ego4d": {"video_uid": "eeee0001-0000-4000-8000-00000000000a",
                         "starting_sec": 60, "ending_sec": 240}})
    assert [(s.answer, s.duration_s) for s in result.samples[1:]] == [("", 180.0), ("E", None)]
    assert result.unanswered == 1


def test_llava_json_single_and_multi_video_rows_keep_meta(tmp_path):
    _touch(tmp_path, "videos/clip_0.mp4", "videos/shelf_a.mp4", "videos/shelf_b.mp4",
           "videos/kitchen.mp4", "videos/sky.mp4")
    samples = _convert("llava_json", FIXTURES / "llava_json/train.json", tmp_path).samples
    assert samples[0] == Sample(
        id="0", videos=[str(tmp_path / "videos/clip_0.mp4")],
        question="The worker performs some of these actions.\n(1) Pick up the screw\n"
                 "(2) Tighten the screw\n(3) Put down the screwdriver\n\n"
                 "Which actions does the worker perform?",
        answer="(1) Pick up the screw; (2) Tighten the screw", answer_type="actions",
        source="llava_json", extra={"meta": {"frame_cnts": [12.0], "min_frames": 4,
                                             "max_frames": 8, "dynamic_sample": True}})
    assert samples[1] == Sample(
        id="1", videos=[str(tmp_path / "videos/shelf_a.mp4"), str(tmp_path / "videos/shelf_b.mp4")],
        question="How many more boxes are on the shelf in the second video than in the first?",
        answer="4", answer_type="number", source="llava_json",
        extra={"meta": {"frame_cnts": [30, 45], "min_frames": 8, "max_frames": 16,
                        "dynamic_sample": False}})
    assert (samples[2].question, samples[2].options, samples[2].answer, samples[2].extra) == (
        "What does the woman pick up?", ["A cup", "A plate", "A fork"], "B", {})
    assert (samples[3].answer, samples[3].answer_type) == ("It is sunny with a few clouds.", "text")


def test_verltool_parquet_video_rows_and_skipped_image_rows(tmp_path):
    rows = json.loads((FIXTURES / "verltool/rows.json").read_text())
    path = _to_parquet(rows, tmp_path / "train.parquet")
    _touch(tmp_path, "videos/fruit.mp4", "videos/birds.mp4")
    result = _convert("verltool", path, tmp_path)
    assert result.samples[0] == Sample(
        id="fruit-0", videos=[str(tmp_path / "videos/fruit.mp4")],
        question="Which fruit is cut first?", answer="B", options=["Apple", "Banana", "Orange"],
        source="TIGER-Lab/PixelReasoner-RL-Data", extra={"split": "train", "index": 0})
    assert result.samples[1] == Sample(
        id="birds-2", videos=[str(tmp_path / "videos/birds.mp4")],
        question="How many birds land on the fence?", answer="7", answer_type="number",
        source="TIGER-Lab/PixelReasoner-RL-Data", extra={"split": "train", "index": 2})
    assert result.skipped == {"image rows, not videos (extra_info.is_video is false)": 1}


def test_videomtr_resolves_paths_like_video_mtr_and_keeps_relevant_frames(tmp_path):
    _touch(tmp_path, "BenchX/video/lot_1.mp4", "NExTVideo/0001/shop.mp4",
           "videos/beachvid_60.0_210.0.mp4")
    samples = _convert("videomtr", FIXTURES / "videomtr/eval_bench.json", tmp_path).samples
    assert samples == [
        Sample(id="AR_1", videos=[str(tmp_path / "BenchX/video/lot_1.mp4")],
               question="What unusual event happens in the parking lot?", answer="C",
               options=["A car fire", "A flood", "A fight", "Nothing unusual"],
               source="BenchX_Test", extra={"problem_type": "multiple choice"}),
        Sample(id="7", videos=[str(tmp_path / "NExTVideo/0001/shop.mp4")],
               question="How many people enter the shop?", answer="5", answer_type="number",
               source="NExT-GQA", extra={"problem_type": "numerical",
                                         "relevant_sample_frames": [10, 11, 12, 13]}),
        Sample(id="qv_3", videos=[str(tmp_path / "videos/beachvid_60.0_210.0.mp4")],
               question="a man walks his dog on the beach", answer="on the beach",
               answer_type="text", source="videomtr", extra={"problem_type": "free-form"}),
    ]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("fmt, fixture, row, field", [
    ("longvideobench", "longvideobench/lvb_val.json", 1, "candidates"),
    ("egoschema", "egoschema/questions.json", 2, "option 3"),
    ("llava_json", "llava_json/train.json", 1, "conversations"),
    ("videomtr", "videomtr/eval_bench.json", 0, "solution"),
    ("mlvu", "mlvu/json/1_plotQA.json", 1, "video"),
])
def test_missing_field_error_names_file_row_and_field(tmp_path, fmt, fixture, row, field):
    rows = json.loads((FIXTURES / fixture).read_text())
    del rows[row][field]
    path = tmp_path / Path(fixture).name
    path.write_text(json.dumps(rows))
    with pytest.raises(SampleError, match=rf"{path.name}:? row {row}: missing field '{field}'"):
        _convert(fmt, path, tmp_path, check_videos=False)


def test_missing_csv_cell_and_jsonl_field_name_the_line(tmp_path):
    lines = (FIXTURES / "nextqa/val.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # line 3 loses its last column, a4
    (tmp_path / "val.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SampleError, match=r"val.csv: line 3: missing field 'a4'"):
        _convert("nextqa", tmp_path / "val.csv", tmp_path, check_videos=False)
    lines = (FIXTURES / "lvbench/video_info.meta.jsonl").read_text().splitlines()
    second = json.loads(lines[1])
    del second["qa"][0]["answer"]
    (tmp_path / "meta.jsonl").write_text(lines[0] + "\n" + json.dumps(second) + "\n")
    with pytest.raises(SampleError, match=r"meta.jsonl: line 2 qa 0: missing field 'answer'"):
        _convert("lvbench", tmp_path / "meta.jsonl", tmp_path, check_videos=False)


def test_answer_that_is_no_option_is_an_error(tmp_path):
    rows = json.loads((FIXTURES / "mlvu/json/1_plotQA.json").read_text())
    rows[0]["answer"] = "She sings"
    (tmp_path / "1_plotQA.json").write_text(json.dumps(rows))
    with pytest.raises(SampleError, match=r"row 0: field 'answer' is 'She sings': neither an "
                                          r"option letter A-D nor the text of one"):
        _convert("mlvu", tmp_path / "1_plotQA.json", tmp_path, check_videos=False)


def test_missing_video_fails_with_its_path_or_is_skipped_and_counted(tmp_path):
    _touch(tmp_path, "0001/1000000001.mp4")
    csv = FIXTURES / "nextqa/val.csv"
    missing = tmp_path / "0002/1000000002.mp4"
    with pytest.raises(SampleError, match=rf"line 3: video file not found: {missing}"):
        _convert("nextqa", csv, tmp_path)
    result = _convert("nextqa", csv, tmp_path, skip_missing=True)
    assert [s.id for s in result.samples] == ["1000000001_0"]
    assert result.skipped == {"video file missing": 2}
    unchecked = _convert("nextqa", csv, tmp_path, check_videos=False)
    assert len(unchecked.samples) == 3


def test_repeated_ids_are_an_error(tmp_path):
    rows = json.loads((FIXTURES / "llava_json/train.json").read_text())
    rows[3]["id"] = 1
    (tmp_path / "train.json").write_text(json.dumps(rows))
    with pytest.raises(SampleError, match="row 3: id '1' repeats the id of row 1"):
        _convert("llava_json", tmp_path / "train.json", tmp_path, check_videos=False)


# ---------------------------------------------------------------- CLI


def test_cli_skip_missing_prints_the_count_and_writes_the_rest(tmp_path, capsys):
    _touch(tmp_path, "0001/1000000001.mp4")
    out = tmp_path / "out/val.jsonl"
    rc = main(["--from", "nextqa", str(FIXTURES / "nextqa/val.csv"), str(out),
               "--video-root", str(tmp_path), "--skip-missing"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "skipped 2 rows: video file missing" in printed
    assert f"wrote 1 samples to {out}" in printed
    assert [s.id for s in load_samples(out)] == ["1000000001_0"]


def test_cli_missing_video_exits_1_naming_the_path(tmp_path, capsys):
    rc = main(["--from", "lvbench", str(FIXTURES / "lvbench/video_info.meta.jsonl"),
               str(tmp_path / "out.jsonl"), "--video-root", str(tmp_path)])
    assert rc == 1
    assert f"line 1 qa 0: video file not found: {tmp_path / 'KeyAAAA0001.mp4'}" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_parquet_output_round_trips_nested_extra(tmp_path):
    out = tmp_path / "train.parquet"
    path = FIXTURES / "llava_json/train.json"
    assert main(["--from", "llava_json", str(path), str(out), "--no-check-videos",
                 "--source", "assembly"]) == 0
    expected = convert("llava_json", path, ConvertOptions(check_videos=False,
                                                          source="assembly")).samples
    assert load_samples(out) == expected
    assert {s.source for s in expected} == {"assembly"}


def test_cli_through_the_vagen_router_rejects_unknown_format(tmp_path, capsys):
    rc = cli.main(["data", "convert", "--from", "nextqa2", str(FIXTURES / "nextqa/val.csv"),
                   str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert f"unknown format 'nextqa2'; registered: {', '.join(FORMATS)}" in (
        capsys.readouterr().err)


def test_cli_rejects_skip_missing_without_video_checks(tmp_path, capsys):
    rc = main(["--from", "nextqa", str(FIXTURES / "nextqa/val.csv"), str(tmp_path / "o.jsonl"),
               "--no-check-videos", "--skip-missing"])
    assert rc == 1
    assert "drop --no-check-videos or --skip-missing" in capsys.readouterr().err


# ---------------------------------------------------------------- parsing helpers


def test_choice_answer_accepts_letters_lettered_text_and_option_text():
    options = ["Apple", "Banana", "Orange"]
    assert [choice_answer(a, options, "answer") for a in
            ["B", "(B)", "B.", "B. Banana", "banana", "Orange."]] == ["B"] * 4 + ["B", "C"]
    for bad in ["D", "B. Apple", "Kiwi"]:
        with pytest.raises(SampleError, match="field 'answer'"):
            choice_answer(bad, options, "answer")


def test_split_inline_options_needs_a_run_from_a():
    assert split_inline_options("Q?\n(A) 1\n(B) 2\nAnswer with a letter.") == ("Q?", ["1", "2"])
    assert split_inline_options("Q about A. Smith?\nA. yes\nB. no") == (
        "Q about A. Smith?", ["yes", "no"])
    assert split_inline_options("Plan A. then B.") == ("Plan A. then B.", None)


def test_is_number():
    assert [is_number(t) for t in ["3", "-2.5", "1,200", "65.4%", "3 cats", "", "1->2"]] == [
        True, True, True, True, False, False, False]


# ---------------------------------------------------------------- real subsets (optional)

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
LLAVA_SUBSET = "ASSY07-relabel-train-10vids-train-mcq-min_frames_4-max_frames_8_grpo.json"


@needs_shared
@pytest.mark.parametrize("fmt, relative, count, first", [
    ("nextqa", "nextqa/val.csv", 50, {"id": "5026660202_8", "answer": "B", "category": "CW"}),
    ("nextgqa", "nextgqa/test.csv", 60,
     {"id": "7676472410_2", "answer": "D", "relevant_spans": [[13.1, 17.8]], "duration_s": 18.0}),
    ("mlvu", "mlvu", 50, {"id": "1_plotQA_0", "answer": "B", "duration_s": 796.0}),
    ("longvideobench", "longvideobench/lvb_val.json", 37,
     {"id": "pJI5ZU6wxqg_1", "answer": "E", "category": "E3E", "duration_s": 1261.12}),
    ("egoschema", "egoschema/questions.json", 20,
     {"id": "001934bb-81bd-4cd8-a574-0472ef3f6678", "answer": "", "duration_s": 180.0}),
    ("llava_json", f"llava_video_grpo/{LLAVA_SUBSET}", 40,
     {"id": "7", "answer_type": "actions", "answer": "(2) Insert one end of FFC into the small "
      "flip lock connector on the bottom left corner of the laptop motherboard"}),
    ("videomtr", "videomtr/eval_mlvu_test.json", 40,
     {"id": "AR_20", "answer": "B", "source": "MLVU_Test"}),
])
def test_real_subset_converts(tmp_path, fmt, relative, count, first):
    samples = _convert(fmt, SHARED / relative, tmp_path, check_videos=False).samples
    assert len(samples) == count
    assert {key: getattr(samples[0], key) for key in first} == first


@needs_shared
def test_real_videomme_rows_from_schema_notes(tmp_path):
    text = (SHARED / "videomme/schema.md").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.startswith('{"video_id"')]
    samples = _convert("videomme", _to_parquet(rows, tmp_path / "t.parquet"), tmp_path,
                       check_videos=False).samples
    assert [(s.id, s.answer) for s in samples] == [("001-1", "C"), ("001-2", "A"), ("001-3", "D")]
    assert samples[2].options == ["1.", "4.", "2.", "3."]
    assert samples[0].videos == [str(tmp_path / "fFjv93ACGo8.mp4")]


@needs_shared
def test_real_lvbench_question_from_schema_notes(tmp_path):
    text = (SHARED / "lvbench/schema.md").read_text()
    quoted = next(line for line in text.splitlines() if line.startswith('`{"video_key"'))
    qa = json.loads(quoted.strip("`"))
    line = {"key": qa.pop("video_key"), "qa": [qa]}
    (tmp_path / "video_info.meta.jsonl").write_text(json.dumps(line) + "\n")
    [sample] = _convert("lvbench", tmp_path / "video_info.meta.jsonl", tmp_path,
                        check_videos=False).samples
    assert (sample.id, sample.answer, sample.options, sample.relevant_spans) == (
        "55", "D", ["1636", "1366", "1363", "1633"], [[15.0, 19.0]])
