from vagen.env.video_qa.lookup import SampleLookup


def test_lookup_finds_the_sample_a_seed_plays_as_the_env_does(env_config):
    config = env_config("retrieve")
    lookup = SampleLookup()
    assert lookup.sample(config, 2).id == lookup.sample(config, 0).id == "one-video"  # seed % 2
    sample = lookup.sample(config, 1)
    assert lookup.durations(sample) == [20.0, 10.0]
