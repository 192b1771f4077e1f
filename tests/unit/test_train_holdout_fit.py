"""fit_on_matrix: a gradient booster refit with its early-stopping rows as views of the matrix."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mlstages.components.train.holdout_fit import fit_on_matrix


def _rows(n: int = 30_000, features: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return x, y


def _peak_bytes(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_booster_fits_without_copying_the_matrix_and_leaves_it_as_it_was():
    x, y = _rows()
    before, labels = x.copy(), y.copy()
    model = HistGradientBoostingClassifier(random_state=0, max_iter=20)
    own_split = _peak_bytes(lambda: HistGradientBoostingClassifier(random_state=0, max_iter=20).fit(x, y))
    in_place = _peak_bytes(lambda: fit_on_matrix(model, x, y, seed=0))
    # The booster's own split copies every row (x.nbytes); the views copy none: what both allocate
    # besides (binned rows, histograms, gradients) is the same.
    assert own_split - in_place > 0.9 * x.nbytes
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, labels)
    assert model.do_early_stopping_ and len(model.validation_score_) > 1
    assert model.get_params()["early_stopping"] == "auto"


def test_booster_is_the_one_its_own_split_gives():
    # The same held-out rows as the booster's own train_test_split: the very same model.
    x, y = _rows(seed=1)
    own = HistGradientBoostingClassifier(random_state=7).fit(x, y)
    in_place = fit_on_matrix(HistGradientBoostingClassifier(random_state=7), x, y, seed=0)
    assert in_place.n_iter_ == own.n_iter_
    np.testing.assert_array_equal(in_place.predict_proba(x[:2_000]), own.predict_proba(x[:2_000]))


def test_held_out_rows_are_stratified_and_seeded():
    x, y = _rows()
    y = np.where(np.arange(len(y)) % 20 == 0, 2, y)  # a 5% class
    first = fit_on_matrix(HistGradientBoostingClassifier(random_state=0, max_iter=5), x, y, seed=3)
    again = fit_on_matrix(HistGradientBoostingClassifier(random_state=0, max_iter=5), x, y, seed=3)
    np.testing.assert_array_equal(first.predict_proba(x[:500]), again.predict_proba(x[:500]))
    assert list(first.classes_) == [0, 1, 2]


def test_regressor_fits_in_place_too():
    x, _ = _rows()
    target = x[:, 0] * 3.0 + x[:, 2]
    before = x.copy()
    model = fit_on_matrix(HistGradientBoostingRegressor(random_state=0), x, target, seed=0)
    assert model.do_early_stopping_ and model.score(x, target) > 0.9
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(),
        HistGradientBoostingClassifier(early_stopping=False, max_iter=5),
        HistGradientBoostingClassifier(validation_fraction=None, max_iter=5),
    ],
    ids=["not a booster", "early stopping off", "no validation rows"],
)
def test_other_fits_are_left_alone(estimator):
    x, y = _rows(12_000)
    fitted = fit_on_matrix(estimator, x, y, seed=0)
    assert fitted is estimator and hasattr(fitted, "classes_")


def test_few_rows_keep_the_boosters_own_rule():
    # 10,500 rows: 'auto' early stopping is on, but 9,450 rows left after holding out would turn it
    # off, and the booster would refuse X_val: it gets the rows whole and decides itself.
    x, y = _rows(10_500)
    model = fit_on_matrix(HistGradientBoostingClassifier(max_iter=5), x, y, seed=0)
    assert model.do_early_stopping_


def test_a_class_of_one_row_gets_the_boosters_own_fit_and_its_error():
    x, y = _rows(12_000)
    y[7] = 9  # one row of its own class: the booster's stratified split refuses it, as before
    with pytest.raises(ValueError, match="least populated class"):
        fit_on_matrix(HistGradientBoostingClassifier(max_iter=5), x, y, seed=0)


def test_a_failed_fit_still_puts_the_rows_back():
    x, y = _rows(12_000)
    before = x.copy()

    class Failing(HistGradientBoostingClassifier):
        def fit(self, X, y, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit_on_matrix(Failing(), x, y, seed=0)
    np.testing.assert_array_equal(x, before)
