package config

import "time"

// GC is the [gc] table: garbage collection (berth gc, and the optional
// in-server schedule). See docs/gc.md.
type GC struct {
	// GracePeriod: blobs and manifests used more recently than this are never
	// collected. It must exceed the longest time a client takes between
	// uploading a blob and pushing the manifest that refers to it.
	GracePeriod time.Duration
	// Interval runs garbage collection inside the server this often (0: never,
	// the default; run berth gc instead).
	Interval time.Duration
	// DeleteUntagged also removes manifests no tag, index or live subject
	// keeps (pushes by digest included) once they are past the grace period.
	DeleteUntagged bool
}

// DefaultGCGracePeriod is gc.grace_period when not set.
const DefaultGCGracePeriod = time.Hour

type rawGC struct {
	GracePeriod    any `toml:"grace_period"`
	Interval       any `toml:"interval"`
	DeleteUntagged any `toml:"delete_untagged"`
}

var gcKnown = []string{"gc", "gc.grace_period", "gc.interval", "gc.delete_untagged"}

func (d *decoder) decodeGC(r *rawGC, c *Config) {
	if r == nil {
		return
	}
	d.duration("gc.grace_period", r.GracePeriod, &c.GC.GracePeriod)
	d.duration("gc.interval", r.Interval, &c.GC.Interval)
	d.boolean("gc.delete_untagged", r.DeleteUntagged, &c.GC.DeleteUntagged)
}

func (c *Config) validateGC(bad func(key, format string, args ...any)) {
	if c.GC.GracePeriod < 0 {
		bad("gc.grace_period", "must not be negative, got %s", c.GC.GracePeriod)
	}
	if c.GC.Interval < 0 {
		bad("gc.interval", "must not be negative (0 turns the schedule off), got %s", c.GC.Interval)
	}
}
