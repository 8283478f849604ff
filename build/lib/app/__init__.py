"""Prime Fabric: the service that takes Studio's stem-separation snapshots."""
