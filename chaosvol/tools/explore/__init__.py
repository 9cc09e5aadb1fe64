"""`chaosvol explore`: search the fault space of a workload and shrink every failure to a
minimal profile. `space` is the pure part (the experiments, the search, the shrinker), `run`
makes the runs through sweep's Workbench and writes what was found."""
