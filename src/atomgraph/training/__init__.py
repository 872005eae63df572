"""Training: typed config, the Lightning modules (property and potential), optimisers, the trainer and
the run record. It trains; evaluation is called after it (:mod:`atomgraph.evaluation`)."""
