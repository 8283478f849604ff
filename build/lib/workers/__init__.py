"""Celery workers: thin task wrappers over the domain services in app/."""
