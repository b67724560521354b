//go:build !unix

package oidc

import "time"

func processCPU() time.Duration { return 0 }
