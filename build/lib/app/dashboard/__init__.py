"""The admin dashboard: server-rendered pages over the stats, runs and models services."""
