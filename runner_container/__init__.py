"""The always-on runner: holds the WhatsApp sockets (neonize), executes the commands of the
sessions placed on it (by slot, `chalicelib/placement.py`) and publishes events. Runs as `python -m runner_container`, locally and in
the container image alike.
"""
