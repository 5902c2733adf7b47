"""Synthetic OMOP-like data for scale tests (`spe synth`).

Every value is a pure function of (seed, table, person_id, event index, field) through a
counter-based hash (`hashing`), never a stateful random stream, so the output does not depend
on how persons are split across processes or batches. Generators (`person`, `visits`,
`conditions`, `drugs`, `measurements`) are pure numpy; `parts` turns them into Arrow tables for
one fixed range of persons; `runner` alone does I/O and the process pool.
Must not import the registry, the CLI or anything from `egress`.

Why it stays inside `hub` although it is test data: it is the engine of `spe synth`, an operator
command of the installed distribution (docs/operator-synthetic-data.md) that must work where
`spe` is installed, e.g. in the hub pod next to the extracts volume. It is kept off the runtime
path instead: only `hub.cli.synth` may import it (a "protected" import contract in
pyproject.toml), so no service (hub, spawners, egress) ever loads it.
"""
