"""The energy schedule: a battery plan computed from events, written as events.

`settings` reads the ``[ems.NAME]`` config tables, `series` the input paths'
values, `lp` builds and solves the linear program, `scheduler` decides when
to plan (sans-io), `runner` runs it in a node, and `whatif` runs it over a
past range of the journal into a scratch view (docs/ems.md).
"""
