"""Clinical stage: responders, trial endpoints, safety and pharmacokinetics (one module each);
the timeline checks of the input tables are in rhlh.contract.timeline, figures in
rhlh.figures.clinical."""
