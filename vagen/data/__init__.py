"""Dataset schema, loading and converters."""

from vagen.data.sample import ANSWER_TYPES, Sample, SampleError, load_samples, save_samples

__all__ = ["ANSWER_TYPES", "Sample", "SampleError", "load_samples", "save_samples"]
