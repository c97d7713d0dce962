package events

// WithLockName returns cfg with a relay lock of its own: a relay started with it leads
// beside the one that holds the usual lock, as an old leader that lost its lock
// connection still publishes for a moment beside the new one.
func WithLockName(cfg RelayConfig, name string) RelayConfig {
	cfg.lockName = name
	return cfg
}
