"""The fingerprint baseline every molecular model is compared with: ECFP bits and a random forest.

Morgan fingerprints of radius 2 folded to 2,048 bits (the ECFP4 of the literature, RDKit's
``rdFingerprintGenerator``) feed a random forest (500 trees, features sampled as sqrt(2048) per split,
scikit-learn's other defaults): a regressor for regression targets, a classifier whose class-1
probability is the score for classification targets. Studies of molecular property prediction find
this pair matches many GNNs on MoleculeNet-sized sets; the benchmark tables show where ours stand.
A SMILES RDKit cannot parse gets an all-zero fingerprint and is counted in ``unparsed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RADIUS, BITS, TREES = 2, 2048, 500


def morgan_fingerprints(
    smiles: Sequence[str], radius: int = RADIUS, bits: int = BITS
) -> tuple[np.ndarray, int]:
    """``(fingerprints [M, bits] uint8, number of SMILES RDKit could not parse)``."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")  # unparsable rows are counted, not printed
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    unparsed = 0
    for row, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text) if isinstance(text, str) and text else None
        if mol is None:
            unparsed += 1
            continue
        out[row] = generator.GetFingerprintAsNumPy(mol)
    return out, unparsed


class FingerprintForest:
    """ECFP4 (2,048 bits) + random forest. kind: "regression" or "classification"; seed: the forest's;
    jobs: worker processes of scikit-learn (1: one core)."""

    def __init__(self, kind: str = "regression", seed: int = 0, jobs: int = 1):
        if kind not in ("regression", "classification"):
            raise ValueError(f"FingerprintForest: kind must be regression or classification, got {kind!r}")
        # here, not at the top: the fingerprints are also read where no forest is fitted (the
        # complexes' leak check, loaded with every run), and scikit-learn costs ~0.8 s to import
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        forest = RandomForestRegressor if kind == "regression" else RandomForestClassifier
        self.kind = kind
        self.forest = forest(n_estimators=TREES, max_features="sqrt", random_state=seed, n_jobs=jobs)
        self.unparsed = 0

    def fit(self, smiles: Sequence[str], y: np.ndarray) -> FingerprintForest:
        """Fit on the rows whose target is known (NaN skipped); returns ``self``."""
        x, self.unparsed = morgan_fingerprints(smiles)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        known = ~np.isnan(y)
        if self.kind == "classification" and not np.isin(y[known], (0.0, 1.0)).all():
            raise ValueError("FingerprintForest: classification labels must be 0 or 1 (NaN = unlabelled)")
        self.forest.fit(x[known], y[known].astype(int) if self.kind == "classification" else y[known])
        return self

    def predict(self, smiles: Sequence[str]) -> np.ndarray:
        """Predictions [M]: the target (regression) or the probability of class 1 (classification)."""
        x, unparsed = morgan_fingerprints(smiles)
        self.unparsed += unparsed
        if self.kind == "regression":
            return self.forest.predict(x)
        classes = list(self.forest.classes_)
        return self.forest.predict_proba(x)[:, classes.index(1)] if 1 in classes else np.zeros(len(x))

    @property
    def parameters(self) -> int:
        """Nodes over all trees (the forest's size; a forest has no trained weights)."""
        return int(sum(tree.tree_.node_count for tree in self.forest.estimators_))
