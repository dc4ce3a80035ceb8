"""Frappe-free building blocks of Backup Manager.

Nothing in this package imports frappe: every rule (retention, schedules, manifests,
checksums, restore plans, storage) is plain Python that takes `now`, paths and backends
as arguments, so it is testable without a site.
"""
