"""What the host did while a repetition measured (docs/hostview.md).

`procstat` parses /proc text and turns two snapshots into CPU shares (pure); `sampler`
reads /proc and QMP at the edges of the measured window (the side effects); `columns`
derives the results frame's CPU columns from a meta's `host_threads`/`host_load` (pure);
`profile` wraps `perf record` and perf's own stack folding.
"""
