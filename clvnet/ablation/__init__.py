"""Ablation suites on SynthRS (``clvnet ablate``): variants, runs, seed statistics and the paper's figures.

* :mod:`clvnet.ablation.suite`: the variants and which of them are the same run;
* :mod:`clvnet.ablation.runner`: plan, run (one process per run), resume, collect;
* :mod:`clvnet.ablation.worker`: one run (training + evaluation) in its own process;
* :mod:`clvnet.ablation.table`: ``table.md`` / ``table.html`` / ``plot.png``;
* :mod:`clvnet.ablation.stats`: mean ± std and Welch's t;
* :mod:`clvnet.ablation.paper`: the paper's Tables II-V.
"""
