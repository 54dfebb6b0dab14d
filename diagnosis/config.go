package diagnosis

import (
	"errors"
	"time"
)

// Config is how diagnosis judges paths and traces. cmd/traceport binds it
// to --silence-after, --orphan-grace, --health-window and
// --health-sample-ratio; the last three configure the topology tracker.
type Config struct {
	// SilenceAfter: a source that sent nothing for this long is stale.
	SilenceAfter time.Duration
	// OrphanGrace: how long a span waits for its parent before it is an orphan.
	OrphanGrace time.Duration
	// HealthWindow: the sliding window of trace health and dependencies.
	HealthWindow time.Duration
	// HealthSampleRatio is the share of traces watched for trace health.
	HealthSampleRatio float64
	// Now is the clock of the report; nil: time.Now.
	Now func() time.Time
}

// DefaultConfig is what traceport runs with when no flag is set.
func DefaultConfig() Config {
	return Config{SilenceAfter: 5 * time.Minute, OrphanGrace: 30 * time.Second, HealthWindow: 5 * time.Minute, HealthSampleRatio: 0.25}
}

// Validate names every setting out of range, one per line.
func (c Config) Validate() error {
	var errs []error
	bad := func(msg string) { errs = append(errs, errors.New(msg)) }
	if c.SilenceAfter <= 0 {
		bad("silence-after: want > 0")
	}
	if c.OrphanGrace <= 0 {
		bad("orphan-grace: want > 0")
	}
	if c.HealthSampleRatio <= 0 || c.HealthSampleRatio > 1 {
		bad("health-sample-ratio: want more than 0 and at most 1")
	}
	if c.HealthWindow < c.OrphanGrace {
		bad("health-window: want at least orphan-grace")
	}
	return errors.Join(errs...)
}
