"""Webhook delivery: signing, SSRF guard, retry policy, circuit breaker, the SQS dispatcher.

See the README's "Webhooks" section for the contract receivers see.
"""
