"""The files and folders of a run directory that more than one part reads: their names have one owner
here, free of Lightning, so that loading a trained run does not import the trainer."""

#: the recalibration of sigma a run's report fits on its validation split (written by
#: atomgraph.evaluation.uncertainty_report, read by atomgraph.runs.TrainedRun)
CALIBRATION_FILE = "calibration.json"
#: an ensemble's record of its members (atomgraph.training.ensemble)
ENSEMBLE_RECORD = "ensemble.json"
#: the training graphs' latent vectors and their distances' recalibration, made by the first
#: ``predict --latent-distance`` (atomgraph.evaluation.latent_distance)
LATENT_REFERENCE_FILE = "latent_reference.npz"
RUN_FILES = (
    "config.yaml", "split.json", "run.json", "metrics.json", "predictions_test.csv", CALIBRATION_FILE,
    ENSEMBLE_RECORD, LATENT_REFERENCE_FILE,
)  # fmt: skip
RUN_FOLDERS = ("checkpoints", "logs", "plots", "members")
