"""Synthetic OMOP-like data for scale tests (`spe synth`).

Every value is a pure function of (seed, table, person_id, event index, field) through a
counter-based hash (`hashing`), never a stateful random stream, so the output does not depend
on how persons are split across processes or batches. Generators (`person`, `visits`,
`conditions`, `drugs`, `measurements`) are pure numpy; `parts` turns them into Arrow tables for
one fixed range of persons; `runner` alone does I/O and the process pool.
Must not import the registry, the CLI or anything from `egress`.
"""
