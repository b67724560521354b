//go:build !berthtest

package main

import "time"

// gcClock is berth gc's clock. A test build (-tags berthtest, the end-to-end
// tests' binary) can move it forward; see gcclock_berthtest.go.
func gcClock() func() time.Time { return time.Now }
