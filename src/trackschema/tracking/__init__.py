"""Tracking: the event queue and its workers (queue) and the propagation handlers (handlers); the tracking triggers and functions are SQL under sql/."""
