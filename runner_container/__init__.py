"""The always-on runner: holds the WhatsApp sockets (neonize), executes commands from its
command shards and publishes events. Runs as `python -m runner_container`, locally and in
the container image alike.
"""
