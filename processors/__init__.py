"""The domain core: pure functions of (state, input, time). No Kafka, Redis, network or clock.

- :mod:`processors.engine`: the contract the stream workers call (Engine, InputRef, Outcome)
- :mod:`processors.state` / :mod:`processors.statecodec`: CustomerState and its compact codec
- :mod:`processors.reducers`: one reducer per input event type
- :mod:`processors.machine`: the declarative persona state machine
- :mod:`processors.deadlines`: time-based behaviour kept as data in the state
- :mod:`processors.triggers`: trigger rules, arbitration, budget, quiet hours, holdout, variants
- :mod:`processors.policy`: shared send rules (also used by the sink)
- :mod:`processors.scoring`: RFM, engagement and category affinity
- :mod:`processors.ruleset` (+ ``ruleload``, ``ruleitems``, ``rulebuilder``, ``yamlsrc``):
  rule files, validated with file/line/field errors; :mod:`processors.conditions` and
  :mod:`processors.facts`: the guard language and what it can read
- :mod:`processors.merge`: identity stitching; :mod:`processors.explain`: ``rules explain``
- :mod:`processors.samples`: event builders for tests, examples and benchmarks

See docs/personas.md.
"""
