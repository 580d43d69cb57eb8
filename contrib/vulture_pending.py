# ruff: noqa
"""Dead code found when the vulture check was added (issue 11), waiting for its owner's
refactor to remove it. Each line is a name vulture reports as unused today; the lint step
passes only because it is listed here. Remove a line when its code goes (or moves to the
tests that are its only caller); delete this file, and its entry in pyproject.toml
[tool.vulture] paths, when it is empty. Never add to it: remove dead code instead.
"""

_ = object()

# --- dead: nothing calls it -----------------------------------------------------------------
_.EPHEMERAL_TYPES  # core/events.py
_.HasScope  # core/permissions.py (the permission classes are being written)

# --- used only by tests: move into the tests, or keep as a documented test hook ---------------
_.log_key  # core/events.py
_.event_log_open  # core/events.py
_.from_text  # core/realtime.py: Frame.from_text
_.subscriber_count  # core/realtime.py
_.rules_cache_clear  # escalation/rules.py
