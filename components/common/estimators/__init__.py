"""The suite's custom scikit-learn estimators and the functions behind its FunctionTransformers.

Their import paths are stable: an exported ``model.joblib`` pickles every class and function by
module and name, and a model loads only where those paths exist. Everything a saved model refers
to outside scikit-learn, numpy, pandas and scipy lives in this package (a test walks the pickle of
an exported model to hold that).

Modules: ``functions`` (FunctionTransformer functions), ``outliers`` (OutlierClipper), ``text``
(TfidfColumn), ``scalers`` (the scaler registry), ``derived`` (DerivedFeatures),
``selection`` (CandidateFeatures, SelectedColumns), ``fast_transform`` (PreprocessorPlan: the
fitted preprocessor's arithmetic with numpy, for fast single-row predictions), ``categories``
(OneHotCodes: one-hot groups back to codes, for the gradient-boosting family's native categories).
"""
