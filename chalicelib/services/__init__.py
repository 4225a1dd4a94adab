"""Business logic. Services take their collaborators as arguments and know nothing of HTTP."""
