"""EAsT pipeline: audio embeddings as teachers for small music classifiers.

Stage one (``pipeline extract``) runs pretrained teachers once and caches their
time-stamped embeddings in a chunked store; stage two (``pipeline distill``)
trains light students on audio with the cached features as a regulariser.
"""
__version__ = "0.1.0"
