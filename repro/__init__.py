"""The reproduction harness: flags and their checks (``cli``), run folders (``run_folder``), the epoch
loop with checkpoints and exact resume (``training``), seeding, data helpers (``batching``,
``caching``, ``timeseries_archive``), sweeps on Ray Tune (``sweep``) and the results report
(``report``). The experiments import it beside the layer library ``unicornn``, which never imports it."""
