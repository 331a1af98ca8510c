"""The reactor: YAML rules matched against every event, and the actions they take.

rules.py (schema) -> conditions.py, templates.py (compiled pieces) -> index.py (by tag)
-> engine.py (decisions, with state.py for changed/for/throttle/threshold) -> actions/.
"""
