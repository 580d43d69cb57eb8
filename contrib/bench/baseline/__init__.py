"""The seed-shaped baseline for ws_fanout.py: a channels-redis group_send hub."""
