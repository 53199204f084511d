"""Several servers sharing one state through NATS JetStream."""
