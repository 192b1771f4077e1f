"""The serving runtime: our KServe model server for the suite's exported models.

Modules: ``model_dir`` (loading and checking a model folder), ``protocol`` (requests to rows),
``client`` (rows to requests: the one serving client), ``model`` (the kserve.Model), ``app`` (the
HTTP server), ``process`` (a server in a subprocess), ``infra`` (infra validation),
``prediction_log`` (scored rows as Parquet), and the command line ``python -m
mlstages.components.serving``. Importing the package loads nothing heavy.

``SklearnPipelineModel`` is a ``kserve.Model`` that serves one model directory (``model.joblib``, the
whole fitted scikit-learn Pipeline that takes raw rows, and ``metadata.json``) through
``kserve.ModelServer``: the V1 protocol (``/v1/models/NAME:predict``), the Open Inference Protocol
V2 (``/v2/models/NAME/infer``), and KServe's health, readiness and model-listing routes. The same
code runs in three places: the cluster (the ``mlstages-sklearn`` ServingRuntime starts
``python -m mlstages.components.serving``), infra validation before deployment, and local runs
(``serve`` in the foreground, ``serve_in_background`` as a subprocess).

Loading (``load_model_dir``) refuses what would serve wrong answers: a ``model.joblib`` whose sha256
differs from the one in ``metadata.json``, and a model trained with a different scikit-learn than
the one running (training/serving skew). ``gs://`` models are read through the suite's storage
module (digests checked there too) into a scratch folder that is removed once the model is loaded.

Requests. The input features and their logical types come from ``metadata.json``:

- V1: ``{"instances": [...]}``, each instance an object keyed by feature name or a list of values
  in ``input_features`` order; ``{"parameters": {"return_probabilities": true}}`` adds class
  probabilities (classifiers). Response: ``{"predictions": [...]}`` (class labels as in training,
  floats for regression), plus ``"probabilities"`` (one list per row) and ``"classes"`` (their
  order) when asked. ``"parameters": {"request_id": "..."}`` names the request in the prediction
  log; with logging on, the response carries ``"request_id"`` (that one, or a generated one).
- V2: one input tensor per feature (``name`` = feature, shape ``[n]`` or ``[n, 1]``; FP64, FP32 or
  an INT type for numeric features, BOOL for boolean ones, BYTES for categorical, text and datetime
  ones), or a single 2-D tensor of shape ``[n, number of features]`` holding each row's values in
  feature order. Response outputs: ``predict`` and, when requested (``outputs`` or the
  ``return_probabilities`` parameter), ``predict_proba`` (shape ``[n, classes]``; its
  ``classes`` parameter is the JSON list of classes in column order). The response ``id`` is the
  request's ``id`` (generated when absent), which is also the request id in the prediction log.

Values: numbers (JSON numbers, not strings) for numeric features, true/false for boolean ones,
strings for categorical and text ones, ISO 8601 strings for datetime ones. A missing value is
``null``: the exported Pipeline imputes missing values, so null is accepted in every feature and
predicted like a missing value in training. V2's JSON parser also reads ``NaN`` as a missing
number; V1's does not (``NaN`` is not JSON) and answers 400. Infinity is refused everywhere.

Every malformed request gets a 4xx with a message naming what is wrong (row, feature, expected
type or count): an empty batch, a missing or unknown feature, the wrong number of values, a value
of the wrong type, invalid JSON, and a body over ``max_body_bytes`` (413, refused before it is
read). A ValueError or TypeError from the model itself on validated rows is also the request's
doing (an unseen category the encoder refuses, say) and answers 400; only a fault of the server
answers 500.
"""
