"""Live migration under I/O (`perfsuite migrate`, docs/migrate.md).

Rooms: `job` (pure: the three fio phases from one job file, the migration schedule),
`timeline` (pure: fio's IOPS logs -> a 100 ms timeline, the IOPS dip), `guest_script`
(the guest's side, run by the init script's mode branch), `hop` (one migration between two
QEMUs over QMP), `scenario` (one repetition: source, destinations, collection), `store`
(the migration record, what lands in RUNS_DIR), `driver` (configurations x repetitions) and
`plot` (the report's timelines).
"""
