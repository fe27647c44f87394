"""The solver's engine rooms, behind the front door :func:`otdata.ot.sinkhorn`.

Imports run one way: :mod:`.scaling` (the one scaling iteration, its absorb and fallback rules)
<- :mod:`.anderson` (Anderson acceleration, a pluggable step) <- the backends, each a source of
the operator the iteration applies: :mod:`.dense` (a stored Gibbs kernel), :mod:`.online`
(log-domain passes over recomputed cost blocks), :mod:`.support` and :mod:`.sparse` (a truncated
kernel certified on the full cost). Nothing here imports the front door.
"""
