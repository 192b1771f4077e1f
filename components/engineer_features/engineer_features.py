"""Feature engineering: derived features and feature selection, fitted on the train split only.

The result is one fitted scikit-learn Pipeline that takes RAW rows (the preprocessor's input
columns) and yields the selected features:

    Pipeline([
        ("union", CandidateFeatures(
            FrozenEstimator(<fitted preprocessor>),                     # never refitted
            DerivedFeatures(derived, scaling),                          # fitted on train
        )),
        ("select", SelectedColumns(<kept names>)),
    ]).set_output(transform="pandas")

``CandidateFeatures`` computes what ``FeatureUnion([preprocessed, derived])`` would, as one array:
the preprocessor through its compiled plan (``preprocess.compile_preprocessor``, checked against
the preprocessor's own transform when fitted), so that one row takes well under a millisecond
instead of the ~15 ms that scikit-learn's per-step overhead costs a FeatureUnion of
ColumnTransformers. ``SelectedColumns`` keeps the selected columns by position. The output is a
DataFrame with the raw rows' index; the train stage's exported model sets the pipeline to arrays.

Derived features are computed from raw values (a ratio of raw values, not of scaled ones), then
imputed with their train median and scaled the way the preprocessor scales numeric columns.

Selection scores every candidate feature on the train split, keeps those that pass the method's
rule, and at most ``max_features`` of them by score. The ``select`` step then keeps exactly those
columns, so the report and the pipeline cannot disagree.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.feature_selection import chi2, mutual_info_classif, mutual_info_regression
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LassoCV, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.validation import check_is_fitted

from mlstages.components.common.datasets import column_types
from mlstages.components.common.errors import InputDataError, ParameterError, require_choice
from mlstages.components.common.estimators.derived import (
    DerivedFeatures,
    check_derived_columns,
    derived_output_names,
    validate_derived,
)
from mlstages.components.common.estimators.scalers import (
    scaling_name,
)
from mlstages.components.common.estimators.selection import CandidateFeatures, SelectedColumns
from mlstages.components.common.labels import CLASSIFICATION, REGRESSION, check_label, resolve_task
from mlstages.components.engineer_features.selection_check import SelectionCheck, check_selection

SELECTIONS = ("none", "variance", "mutual_info", "chi2", "l1")


TASKS = (CLASSIFICATION, REGRESSION)


# SelectFromModel's default threshold for L1-penalised models: a coefficient this small is zero.
L1_ZERO = 1e-5


L1_C = 1.0


L1_MAX_ITER = 5000


_SCORE_NAMES = {
    "none": "variance",
    "variance": "variance",
    "mutual_info": "mutual information",
    "chi2": "chi-squared",
    "l1": "|L1 coefficient|",
}


@dataclass(frozen=True)
class FeatureConfig:
    """What to derive and how to select.

    label_column: the label in the train split (never a feature).
    task: classification or regression (preprocess' ``task`` output).
    derived: derived-feature spec entries (JSON-able dicts), e.g.
        ``{"name": "bill_ratio", "kind": "ratio", "columns": ["bill_length_mm", "bill_depth_mm"]}``.
        Kinds: ratio (2 numeric columns; a zero denominator gives a missing value, then imputed),
        log (1 numeric column: log1p of the value minus the train minimum), date_parts (1 datetime
        or date-text column → ``parts`` of year, month, day, dayofweek, hour; all by default),
        bin (1 numeric column → index of its quantile bin, ``n_bins`` default 5), interaction
        (2+ numeric columns → their product, or with ``"pairwise": true`` every pair's product).
    selection: none, variance (keep variance > ``variance_threshold``), mutual_info (keep
        mutual information with the label > 0), chi2 (classification only: keep chi-squared > 0,
        scored on min-max scaled copies because chi-squared needs non-negative values), or l1
        (keep non-zero coefficients of an L1 logistic regression with C=1, or of a cross-validated
        Lasso on the standardised label for regression).
    max_features: at most this many passing features are kept, best scores first; 0 keeps all
        that pass. A selection that drops features is kept only when cross-validation says it does not
        make the model worse (selection_check.py); otherwise every candidate is kept, and the
        report says why.
    variance_threshold: the threshold of the variance method.
    seed: seeds mutual information's nearest-neighbour noise and the L1 models.
    max_fit_rows: the component fits on a seeded sample of this many train rows when there are
        more; 0 takes what the task's memory allowance affords, at most 200,000 rows.
    """

    label_column: str
    task: str
    derived: tuple[dict[str, Any], ...] = ()
    selection: str = "none"
    max_features: int = 0
    variance_threshold: float = 0.0
    seed: int = 42
    max_fit_rows: int = 0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_fit_rows, bool)
            or not isinstance(self.max_fit_rows, int)
            or self.max_fit_rows < 0
        ):
            raise ParameterError(
                f"parameter max_fit_rows={self.max_fit_rows!r} must be 0 (as many as the task's memory "
                "allows) or a positive number of rows"
            )
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise ParameterError("parameter label_column is empty: name the column to predict")
        require_choice("task", self.task, TASKS)
        require_choice("selection", self.selection, SELECTIONS)
        if self.selection == "chi2" and self.task == REGRESSION:
            raise ParameterError(
                "selection='chi2' scores features against classes and needs task='classification'; "
                "for regression use 'mutual_info', 'l1' or 'variance'"
            )
        if (
            isinstance(self.max_features, bool)
            or not isinstance(self.max_features, int)
            or self.max_features < 0
        ):
            raise ParameterError(
                f"parameter max_features={self.max_features!r} must be an integer >= 0 (0 keeps all that pass)"
            )
        if self.selection == "none" and self.max_features:
            raise ParameterError(
                f"parameter max_features={self.max_features} only applies with a selection method, "
                "but selection is 'none'; choose a selection (e.g. 'mutual_info') or set max_features=0"
            )
        threshold = self.variance_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
            raise ParameterError(f"parameter variance_threshold={threshold!r} must be a number >= 0")
        if not math.isfinite(threshold):
            raise ParameterError(f"parameter variance_threshold={threshold!r} must be finite")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ParameterError(f"parameter seed={self.seed!r} must be an integer in [0, 2**32)")
        object.__setattr__(self, "derived", validate_derived(self.derived))


@dataclass(frozen=True)
class Selection:
    kept: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]


# Candidate columns whose variance is computed at a time. nanvar makes two copies of its input (NaN
# replaced, then the deviations): for the whole sample of 200,000 rows and 141 features that is
# 450 MB above the candidates themselves, for a block of 16 about 50 MB. Each column's variance is
# computed alone either way; only numpy's summation order may differ (in the last bits, for a block
# of one or two columns).
VARIANCE_BLOCK_COLUMNS = 16


def column_variances(Z: pd.DataFrame, block_columns: int = VARIANCE_BLOCK_COLUMNS) -> np.ndarray:
    """Each column's variance, NaN ignored, a block of columns at a time; 0 for a constant column."""
    variances = np.empty(Z.shape[1], dtype=np.float64)
    for start in range(0, Z.shape[1], block_columns):
        values = Z.iloc[:, start : start + block_columns].to_numpy(dtype="float64")
        block = np.nanvar(values, axis=0)
        # As VarianceThreshold does: a constant column has variance 0, not a rounding error above it.
        block[np.ptp(values, axis=0) == 0] = 0.0
        variances[start : start + block_columns] = block
    return variances


def feature_scores(Z: pd.DataFrame, y: pd.Series, config: FeatureConfig) -> tuple[np.ndarray, list[str]]:
    """Each candidate's score for ``config.selection`` (higher is better), and notes."""
    notes: list[str] = []
    if config.selection in ("none", "variance"):
        return column_variances(Z), notes
    values = Z.to_numpy(dtype="float64")
    if config.selection == "mutual_info":
        score = mutual_info_classif if config.task == CLASSIFICATION else mutual_info_regression
        return score(values, y.to_numpy(), random_state=config.seed), notes
    if config.selection == "chi2":
        scaled = MinMaxScaler().fit_transform(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant column scores 0/0
            statistics, _ = chi2(scaled, y.to_numpy())
        notes.append(
            "chi-squared was computed on min-max scaled copies of the features (it needs values >= 0)."
        )
        return np.nan_to_num(statistics, nan=0.0), notes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if config.task == CLASSIFICATION:
            model = LogisticRegression(
                l1_ratio=1.0, solver="saga", C=L1_C, max_iter=L1_MAX_ITER, random_state=config.seed
            ).fit(values, y.to_numpy())
            scores = np.abs(model.coef_).sum(axis=0)
        else:
            target = y.to_numpy(dtype="float64")
            spread = target.std() or 1.0
            folds = max(2, min(5, len(target) // 2))
            model = LassoCV(cv=folds, random_state=config.seed, max_iter=L1_MAX_ITER).fit(
                values, (target - target.mean()) / spread
            )
            scores = np.abs(model.coef_)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append(
            f"the L1 model did not fully converge in {L1_MAX_ITER} iterations; coefficients are approximate."
        )
    return scores, notes


def select_features(
    Z: pd.DataFrame, y: pd.Series, config: FeatureConfig, sources: dict[str, str]
) -> Selection:
    """Score every candidate column of ``Z`` on the train split, decide which to keep, say why.

    ``sources`` maps each feature to where it came from ("preprocessed" or "derived").
    """
    scores, notes = feature_scores(Z, y, config)
    names = [str(c) for c in Z.columns]
    score_name = _SCORE_NAMES[config.selection]
    method = config.selection
    if method == "none":
        passes = np.ones(len(names), dtype=bool)
    elif method == "variance":
        passes = scores > config.variance_threshold
    elif method == "l1":
        passes = scores > L1_ZERO
    else:
        passes = scores > 0
    # Ranks by score, best first; ties keep column order, so the ranking is deterministic.
    order = sorted(range(len(names)), key=lambda i: (-scores[i], i))
    rank = {index: position + 1 for position, index in enumerate(order)}
    cap = config.max_features
    rows = []
    kept = []
    for i in order:
        r = rank[i]
        if not passes[i]:
            status, reason = "dropped", _fail_reason(config, scores[i])
        elif cap and r > cap:
            status, reason = "dropped", f"rank {r} > max_features {cap}"
        else:
            status = "kept"
            reason = "no selection" if method == "none" else f"{_pass_reason(config)}, rank {r}"
            kept.append(names[i])
        rows.append(
            {
                "feature": names[i],
                "source": sources.get(names[i], "preprocessed"),
                "score": float(scores[i]),
                "score_name": score_name,
                "rank": r,
                "status": status,
                "reason": reason,
            }
        )
    if not kept:
        raise InputDataError(
            f"selection={method!r} kept none of the {len(names)} candidate features "
            f"({_fail_reason(config, 0.0)} for all); lower variance_threshold, or use another selection"
        )
    # The kept features stay in the order the union produces them, not in score order.
    kept_in_order = tuple(n for n in names if n in set(kept))
    return Selection(kept_in_order, tuple(rows), tuple(notes))


def _pass_reason(config: FeatureConfig) -> str:
    return {
        "variance": f"variance above threshold {config.variance_threshold:g}",
        "mutual_info": "mutual information with the label above 0",
        "chi2": "chi-squared above 0",
        "l1": "non-zero L1 coefficient",
    }[config.selection]


def _fail_reason(config: FeatureConfig, score: float) -> str:
    return {
        "variance": f"variance {score:.4g} at or below threshold {config.variance_threshold:g}",
        "mutual_info": "no mutual information with the label (0)",
        "chi2": "chi-squared 0: no association with the classes",
        "l1": f"L1 coefficient zero (|coef| <= {L1_ZERO:g})",
        "none": "",
    }[config.selection]


@dataclass(frozen=True)
class FeatureResult:
    """The fitted feature pipeline, the selection report, and the names that come out of it."""

    config: FeatureConfig
    feature_pipeline: Pipeline
    report: tuple[dict[str, Any], ...]
    feature_names: tuple[str, ...]
    candidate_names: tuple[str, ...]
    derived_names: tuple[str, ...]
    input_columns: tuple[str, ...]
    scaling: str
    notes: tuple[str, ...] = ()
    selection_check: SelectionCheck | None = None


def preprocessor_scaling(preprocessor: Any) -> str:
    """How the preprocessor scales numeric columns (its ``num`` path's ``scale`` step).

    ``"standard"`` when it has no numeric path, so derived features are still put on a common scale.
    """
    numeric = getattr(preprocessor, "named_transformers_", {}).get("num")
    if not isinstance(numeric, Pipeline):
        return "standard"
    scaler = numeric.named_steps.get("scale")
    # A scaler the registry does not name: derived features are still put on a common scale.
    return scaling_name(scaler) or "standard"


def engineer_features(train_df: pd.DataFrame, preprocessor: Any, config: FeatureConfig) -> FeatureResult:
    """Fit derived features and feature selection on the train split (raw rows, label included).

    ``preprocessor`` is preprocess' fitted transformer; it is used as it is (wrapped in
    FrozenEstimator) and never refitted. Everything is checked before anything is fitted.
    """
    try:
        check_is_fitted(preprocessor)
        input_columns = [str(c) for c in preprocessor.feature_names_in_]
    except (NotFittedError, AttributeError, TypeError) as exc:
        raise InputDataError(
            "the transformer is not a fitted preprocessor from the preprocess stage (fitted on a DataFrame)"
        ) from exc
    if len(train_df) == 0:
        raise InputDataError("the train split has no rows")
    y = check_label(train_df, config.label_column, what="train split", task=config.task)
    resolve_task(y, config.task)
    missing = [c for c in input_columns if c not in train_df.columns]
    if missing:
        raise InputDataError(
            f"the train split lacks column(s) {', '.join(map(repr, missing))} that the transformer was "
            "fitted on; pass the train split written by the same preprocess run"
        )
    X = train_df[input_columns]
    check_derived_columns(
        X, config.derived, all_columns=[str(c) for c in train_df.columns], label_column=config.label_column
    )
    preprocessed_names = [str(n) for n in preprocessor.get_feature_names_out()]
    derived_names = [n for spec in config.derived for n in derived_output_names(spec)]
    clashes = sorted(set(derived_names) & set(preprocessed_names))
    if clashes:
        raise ParameterError(
            f"derived feature name(s) {', '.join(map(repr, clashes))} are already preprocessed feature "
            "names; rename those derived_features entries"
        )
    scaling = preprocessor_scaling(preprocessor)
    union = CandidateFeatures(FrozenEstimator(preprocessor), DerivedFeatures(config.derived, scaling))
    union.set_output(transform="pandas").fit(X, y)
    candidates = union.transform(X)
    sources = {**dict.fromkeys(preprocessed_names, "preprocessed"), **dict.fromkeys(derived_names, "derived")}
    selection = select_features(candidates, y, config, sources)
    check = None
    if config.selection != "none" and len(selection.kept) < candidates.shape[1]:
        check = check_selection(candidates, y, selection.kept, resolve_task(y, config.task), config.seed)
        if not check.kept:
            selection = _undo_selection(selection, candidates)
    selector = SelectedColumns(list(selection.kept)).fit(candidates)
    # Assembled from fitted parts: Pipeline.fit would fit the union again, for nothing. Pandas out,
    # with the raw rows' index; train's model sets it to arrays (set_output "default").
    feature_pipeline = Pipeline([("union", union), ("select", selector)]).set_output(transform="pandas")
    return FeatureResult(
        config=config,
        feature_pipeline=feature_pipeline,
        report=selection.rows,
        feature_names=selection.kept,
        candidate_names=tuple(str(c) for c in candidates.columns),
        derived_names=tuple(derived_names),
        input_columns=tuple(input_columns),
        scaling=scaling,
        notes=(*selection.notes, *([union.plan_note_] if union.plan_note_ else [])),
        selection_check=check,
    )


def _undo_selection(selection: Selection, candidates: pd.DataFrame) -> Selection:
    """Every candidate kept, the report saying which the selection would have dropped."""
    rows = tuple(
        {**row, "status": "kept", "reason": f"{row['reason']}; kept: the selection makes the model worse"}
        if row["status"] == "dropped"
        else row
        for row in selection.rows
    )
    return Selection(tuple(str(c) for c in candidates.columns), rows, selection.notes)


def check_matches_preprocess(config: FeatureConfig, metadata: dict[str, Any]) -> None:
    """Raise ParameterError when ``config`` disagrees with the preprocess run that wrote the
    transformer (its metadata): a different label column or task would train on the wrong target."""
    for key, value in (("label_column", config.label_column), ("task", config.task)):
        recorded = metadata.get(key)
        if recorded is not None and recorded != value:
            raise ParameterError(
                f"parameter {key}={value!r} differs from the preprocess run that fitted the transformer "
                f"({key}={recorded!r}); pass preprocess' value"
            )


def feature_metadata(result: FeatureResult, train_df: pd.DataFrame) -> dict[str, Any]:
    """The metadata saved beside the fitted feature pipeline (and on the Model artifact)."""
    config = asdict(result.config)
    config["derived"] = [dict(spec) for spec in result.config.derived]
    return {
        "stage": "engineer_features",
        "label_column": result.config.label_column,
        "task": result.config.task,
        # Logical type of each raw input column; metadata.json sorts keys, so the order is kept apart.
        "input_columns": column_types(train_df[list(result.input_columns)]),
        "input_column_order": list(result.input_columns),
        "feature_names": list(result.feature_names),
        "candidate_features": list(result.candidate_names),
        "derived_features": list(result.derived_names),
        "selection": result.config.selection,
        "derived_scaling": result.scaling,
        "selection_check": None if result.selection_check is None else result.selection_check.to_dict(),
        "config": config,
    }


_REPORT_COLUMNS = ["feature", "source", "score", "rank", "status", "reason"]


_DERIVED_COLUMNS = ["name", "kind", "columns", "features"]


def _derived_rows(result: FeatureResult) -> list[dict[str, Any]]:
    return [
        {
            "name": spec["name"],
            "kind": spec["kind"],
            "columns": ", ".join(spec["columns"]),
            "features": ", ".join(derived_output_names(spec)),
        }
        for spec in result.config.derived
    ]


def _headline(result: FeatureResult) -> str:
    config = result.config
    method = "no selection" if config.selection == "none" else f"selection {config.selection}"
    cap = f", max_features {config.max_features}" if config.max_features else ""
    text = (
        f"{len(result.candidate_names)} candidate features ({len(result.derived_names)} derived), "
        f"{method}{cap}: {len(result.feature_names)} kept. Scores come from the train split "
        f"({_SCORE_NAMES[config.selection]})."
    )
    if result.selection_check is not None:
        text += " " + result.selection_check.sentence()
    return text


def render_html(result: FeatureResult) -> str:
    """The selection report: every candidate feature with its score, kept or dropped, and why."""
    from mlstages.components.common.reports import html_list, html_page, html_paragraph, html_table

    sections = [("Summary", html_paragraph(_headline(result)))]
    if result.config.derived:
        sections.append(("Derived features", html_table(_derived_rows(result), _DERIVED_COLUMNS)))
    sections.append(("Selection", html_table(result.report, _REPORT_COLUMNS)))
    if result.notes:
        sections.append(("Notes", html_list(result.notes)))
    return html_page("Feature engineering", sections)


def render_markdown(result: FeatureResult) -> str:
    """The Markdown summary: what was derived, what was kept, what was dropped and why."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    lines = ["# Engineer features", "", markdown_text(_headline(result)), ""]
    if result.config.derived:
        lines += ["## Derived features", "", markdown_table(_derived_rows(result), _DERIVED_COLUMNS), ""]
    lines += ["## Selection", "", markdown_table(result.report, _REPORT_COLUMNS), ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {markdown_text(n)}" for n in result.notes], ""]
    return "\n".join(lines)
