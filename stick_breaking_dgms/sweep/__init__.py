"""Sweeps: a grid of independent training runs, fanned out on Dask.

A grid file (TOML, :mod:`.grid`) names models, data sets, label fractions, swept flags
(``alpha0``, ...), seeds, extra flags and the number of epochs. Each point of the grid
is one training run -- exactly the command a user would type with the flags of the
``sbdgm-train-*`` scripts -- in its own experiment directory under the sweep folder.
:mod:`.runner` runs them as tasks on a Dask cluster (a ``LocalCluster`` by default, or
an existing one), each training in a subprocess of its task (:mod:`.task`), so that a
finished run is never repeated, an unfinished one resumes from its checkpoint and a
worker lost mid-run has its run resumed elsewhere. :mod:`.progress` shows what runs,
:mod:`.aggregate` chooses the swept setting of each cell by its validation score and
summarises the test metric over seeds.

Modules
-------
grid       parse, validate and expand a grid file into :class:`~.grid.Run` objects
manifest   the sweep folder's record of its runs (``sweep.json``)
status     whether a run has finished, read from its checkpoint
task       what a Dask worker does for one run (a training subprocess)
runner     the Dask side: the cluster, submission, Ctrl-C
progress   queued / running / done / failed, on a terminal and in ``sweep.log``
aggregate  selection by validation score, mean and standard deviation over seeds
cli        ``sbdgm-sweep`` / ``python -m stick_breaking_dgms.sweep``
"""
