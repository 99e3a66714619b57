"""Training: one run set up from its spec (`members`), one loop for one or many runs (`loop`),
stacking of same-shape runs under vmap (`stacking`), the run's outputs (`outputs`), and a
workflow job training a cohort (`cohort`)."""
