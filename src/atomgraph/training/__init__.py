"""Training: typed config, the prediction module (plain torch: what a loaded run is) and the Lightning
module that trains it (properties and potentials), optimisers, the trainer and the run record. It
trains; evaluation is called after it (:mod:`atomgraph.evaluation`)."""
