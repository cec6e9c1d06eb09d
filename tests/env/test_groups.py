import pytest

from vagen.env import load_env_groups


def test_load_env_groups_reads_a_list_or_a_mapping(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- {name: r, env: video_qa, protocol: retrieve}\n"
                      "- {name: s, env: video_qa, protocol: single}\n")
    assert load_env_groups(listed)["s"] == {"name": "s", "env": "video_qa", "protocol": "single"}
    mapped = tmp_path / "map.yaml"
    mapped.write_text("env_groups:\n  - {name: r, env: video_qa}\n")
    assert list(load_env_groups(mapped)) == ["r"]
    twice = tmp_path / "twice.yaml"
    twice.write_text("- {name: r, env: video_qa}\n- {name: r, env: video_qa}\n")
    with pytest.raises(ValueError, match="'r' appears twice"):
        load_env_groups(twice)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_env_groups(tmp_path / "missing.yaml")
