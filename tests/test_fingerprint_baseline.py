"""The ECFP + random forest baseline of the molecular benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from atomgraph.evaluation.fingerprint_baseline import BITS, FingerprintForest, morgan_fingerprints

ALCOHOLS = ["C" * n + "O" for n in range(1, 13)]
ALKANES = ["C" * n for n in range(1, 13)]


def test_fingerprints_are_ecfp4_bits_and_bad_smiles_are_counted():
    bits, unparsed = morgan_fingerprints(["CCO", "OCC", "c1ccccc1", "not a smiles", ""])
    assert bits.shape == (5, BITS) and bits.dtype == np.uint8 and unparsed == 2
    assert np.array_equal(bits[0], bits[1])  # the same molecule written twice
    assert not np.array_equal(bits[0], bits[2]) and bits[2].sum() == 3  # benzene: 3 distinct environments
    assert not bits[3].any() and not bits[4].any()


def test_the_forest_learns_a_substructure_target():
    """Regression: the target is 1 for alcohols, 0 for alkanes; held-out chain lengths are predicted."""
    train = ALCOHOLS[::2] + ALKANES[::2]
    y = np.array([1.0] * len(ALCOHOLS[::2]) + [0.0] * len(ALKANES[::2]))
    forest = FingerprintForest("regression", seed=0).fit(train, y)
    test = ALCOHOLS[1::2] + ALKANES[1::2]
    pred = forest.predict(test)
    assert pred[:6].min() > pred[6:].max() and pred[:6].mean() > 0.8 and pred[6:].mean() < 0.2
    assert forest.parameters > 500  # 500 trees of at least one node each
    classifier = FingerprintForest("classification", seed=0).fit([*train, "bad(("], np.append(y, np.nan))
    prob = classifier.predict(test)
    assert np.all((prob >= 0) & (prob <= 1)) and prob[:6].min() > prob[6:].max()


def test_unknown_kind_and_labels_are_refused():
    with pytest.raises(ValueError, match="regression or classification"):
        FingerprintForest("ranking")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        FingerprintForest("classification").fit(ALCOHOLS[:4], np.array([1.0, 2.0, 1.0, 2.0]))
