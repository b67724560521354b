//go:build berthtest

package main

import (
	"os"
	"time"
)

// gcClock is berth gc's clock, moved forward by BERTH_TEST_GC_CLOCK_OFFSET
// (a Go duration): the end-to-end tests make a zero grace period's garbage
// old enough to collect on any timestamp granularity (S3's LastModified has
// whole seconds, and the S3 collector adds a second of margin) without
// sleeping. Only a binary built with -tags berthtest honours the variable.
func gcClock() func() time.Time {
	off, err := time.ParseDuration(os.Getenv("BERTH_TEST_GC_CLOCK_OFFSET"))
	if err != nil {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(off) }
}
