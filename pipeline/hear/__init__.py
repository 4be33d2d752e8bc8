"""The pipeline's teacher ports as HEAR 2021 API modules.

``pipeline.hear.musicnn``, ``.openl3``, ``.vggish``, ``.passt`` and ``.panns`` each expose
``load_model(model_file_path="", **settings)``, ``get_timestamp_embeddings(audio, model)``
and ``get_scene_embeddings(audio, model)`` exactly as https://hearbenchmark.com/hear-api.html
specifies, so hear-eval-kit (``python3 -m heareval.embeddings.runner pipeline.hear.musicnn``)
can evaluate the ports, and the official validator accepts them::

    hear-validator pipeline.hear.musicnn
    hear-validator pipeline.hear.vggish --model vggish-10086976.pth

``model_file_path`` is the teacher's weight file (``weights`` in ``params.yaml``); keyword
settings are the teacher's ``params.yaml`` settings. Timestamps are frame centers in
milliseconds; scene embeddings are the mean of the timestamp embeddings. PaSST and PANNs run
at 32 kHz, which the HEAR 2021 rules do not allow: their modules declare 48 kHz and
resample to 32 kHz inside (soxr, HQ).
"""
